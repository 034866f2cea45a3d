"""attnlab's local parallel launcher for Hydra (``hydra/launcher=parallel``), found by Hydra's plugin scan of the
``hydra_plugins`` namespace package."""
