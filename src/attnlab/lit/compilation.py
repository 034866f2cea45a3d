"""The ``compile`` switch shared by the task modules: ``torch.compile`` their ``net`` in place, once."""
from __future__ import annotations


class CompileNetMixin:
    """For a LightningModule with a ``net`` and a ``compile`` hyperparameter (list it first among the bases).

    ``nn.Module.compile`` compiles in place, so the state-dict keys stay the same and checkpoints load with or
    without it. Lightning calls ``configure_model`` before every fit/validate/test, on the device and inside
    the strategy; only the first call compiles.
    """

    _net_compiled = False  # set on the instance by the first compiling call

    def configure_model(self) -> None:
        if self.hparams.compile and not self._net_compiled:
            self.net.compile()
            self._net_compiled = True
