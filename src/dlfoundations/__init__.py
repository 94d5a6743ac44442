"""dlfoundations: the classic experiments of deep-learning foundations, one command each."""

__version__ = "0.1.0"
