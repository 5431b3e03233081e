"""Using a trained model: predict (and `batch_predict`: many images for a person to look at), evaluate,
metrics, heat maps, export.

Nothing here imports the training loop: a checkpoint carries everything needed to predict.
"""
