"""attnlab's Optuna sweeper for Hydra (``hydra/sweeper=attnlab_optuna``), found by Hydra's plugin scan of the
``hydra_plugins`` namespace package."""
