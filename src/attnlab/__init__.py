"""attnlab: config-composed attention models (d2l ch. 11) on PyTorch Lightning + Hydra."""
__version__ = "0.1.0"


class UserError(Exception):
    """A mistake in what was asked for (a config value, a path), not in attnlab: the commands print its message
    alone, which names the value and what would work (``HYDRA_FULL_ERROR=1`` adds the traceback)."""


class MissingFileError(UserError, FileNotFoundError):
    """A file that was named (a corpus, a checkpoint, a pretrained model) is not there."""


class BadFileError(UserError, ValueError):
    """A file that was named holds something attnlab cannot use (corrupt, foreign, or the wrong kind)."""
