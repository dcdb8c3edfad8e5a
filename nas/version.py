"""The package version, one definition (read by the model card and `nas --version`)."""
__version__ = "0.1.0"
