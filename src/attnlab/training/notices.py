"""Lightning's notices that tell an attnlab user nothing true, silenced one by one (each by its own text, so a
new or reworded notice still shows).

- the LitLogger advertisement, printed by every ``Trainer``;
- ``isinstance(treespec, LeafSpec)`` is deprecated: torch's FutureWarning about Lightning's own code;
- "Precision bf16-mixed is not supported by the model summary... will not be accurate": mixed precision keeps the
  parameters in fp32, so the summary's 32-bit size is the right one;
- ``fast_dev_run``'s "Logging and checkpointing is suppressed": loggers are, but the checkpoint callbacks still
  write (``last.ckpt``, averaging snapshots), so the sentence is replaced by what happens.
"""
from __future__ import annotations

import logging
import warnings

_ADVERT = "💡 Tip: For seamless cloud logging"
_SUPPRESSED = "Logging and checkpointing is suppressed."
_WHAT_HAPPENS = "Loggers record nothing; checkpoint callbacks still write."
_LIGHTNING_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero")


class _LightningNotices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(_ADVERT):
            return False
        if _SUPPRESSED in message:
            record.msg, record.args = message.replace(_SUPPRESSED, _WHAT_HAPPENS), ()
        return True


def quiet_lightning() -> None:
    """Install the filters (idempotent); call before the first ``Trainer`` is built."""
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            category=FutureWarning)
    warnings.filterwarnings("ignore", message=r"Precision (bf)?16-mixed is not supported by the model summary",
                            category=UserWarning)
    for name in _LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, _LightningNotices) for existing in logger.filters):
            logger.addFilter(_LightningNotices())
