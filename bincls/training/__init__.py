"""Training: the settings schema and its pre-flight checks, the loop in parts, callbacks, events, the
run folder and its summary (what the pages and the CLI show of a run), the launcher.

Kept free of imports, so that reading a run folder (`bincls.training.run_folder`) or the settings
(`bincls.training.config`) does not load the training loop.
"""
