"""Using a trained model: predict, evaluate, metrics, heat maps, export.

Nothing here imports the training loop: a checkpoint carries everything needed to predict.
"""
