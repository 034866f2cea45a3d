"""attnlab: config-composed attention models (d2l ch. 11) on PyTorch Lightning + Hydra.

``attnlab.load(path)`` (:mod:`attnlab.inference`) reads a trained run; it is imported on first use, so that
``import attnlab`` stays cheap.
"""
__version__ = "0.1.0"
__all__ = ["load"]


def __getattr__(name: str):
    if name == "load":
        from attnlab.inference import load

        return load
    raise AttributeError(f"module 'attnlab' has no attribute {name!r}")
