"""bincls: binary image classification from two folders of images."""

from bincls.errors import BinclsError

__version__ = "0.1.0"

__all__ = ["BinclsError", "__version__"]
