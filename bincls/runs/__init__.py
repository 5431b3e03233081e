"""The run folder as its own layer: what training leaves and everything else reads (its files, status
and process, the listing and the active run, names, test results, the metrics as they grow, summaries).

Below training and inference: nothing here imports either, so reading runs never loads a trainer.
"""
