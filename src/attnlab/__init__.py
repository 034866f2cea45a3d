"""attnlab: config-composed attention models (d2l ch. 11) on PyTorch Lightning + Hydra.

``attnlab.load(path)`` (:mod:`attnlab.inference`) reads a trained run; it is imported on first use, so that
``import attnlab`` stays cheap.
"""
__version__ = "0.1.0"
__all__ = ["BadFileError", "ConfigError", "MissingFileError", "TrainingDiverged", "UserError", "load"]


class UserError(Exception):
    """A mistake in what was asked for (a config value, a path), not in attnlab: the commands print its message
    alone, which names the value and what would work (``HYDRA_FULL_ERROR=1`` adds the traceback)."""


class MissingFileError(UserError, FileNotFoundError):
    """A file that was named (a corpus, a checkpoint, a pretrained model) is not there."""


class BadFileError(UserError, ValueError):
    """A file that was named holds something attnlab cannot use (corrupt, foreign, or the wrong kind)."""


class ConfigError(UserError, ValueError):
    """A config value that cannot work, found before training starts."""


class TrainingDiverged(RuntimeError):
    """The training loss or a validation metric is no longer finite (raised by ``training.divergence``; here so that the
    sweeper can recognise it without importing the training stack)."""


def __getattr__(name: str):
    if name == "load":
        from attnlab.inference import load

        return load
    raise AttributeError(f"module 'attnlab' has no attribute {name!r}")
