"""attnlab: config-composed attention models (d2l ch. 11) on PyTorch Lightning + Hydra."""
__version__ = "0.1.0"
