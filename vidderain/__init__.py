"""vidderain: remove rain from videos and image folders with a trained Keras network."""

__version__ = "0.1.0"
