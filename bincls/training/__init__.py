"""Training: the settings schema and its pre-flight checks, presets, the loop in parts, its state and
callbacks, events, the launcher. Run folders are `bincls.runs`.

Kept free of imports, so that reading the settings (`bincls.training.config`) does not load the loop.
"""
