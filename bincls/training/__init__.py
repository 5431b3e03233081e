"""Training: the settings schema, the loop in parts, callbacks, events, the run folder, the launcher.

Kept free of imports, so that reading a run folder (`bincls.training.run_folder`) or the settings
(`bincls.training.config`) does not load the training loop.
"""
