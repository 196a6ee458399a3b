"""facegen: learn human faces from CelebA (or any folder of face photos) and generate new ones."""

__version__ = "0.1.0"
