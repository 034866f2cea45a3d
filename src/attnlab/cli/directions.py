"""Which way a metric improves, read from its name: one table for the report's "best", its comparisons against a
baseline and the Optuna sweeper's direction."""
from __future__ import annotations

import re

HIGHER = ("acc", "accuracy", "bleu", "chrf", "f1", "precision", "recall", "auroc", "mcc")  # better when larger
LOWER = ("loss", "ppl", "perplexity", "ter", "mse", "mae", "rmse", "error", "wer", "cer")  # better when smaller
MODES = {"min": "minimize", "max": "maximize"}


def metric_mode(metric: str) -> str | None:
    """``"max"``, ``"min"``, or None for a name the table does not know; the parts of ``val/nsp_acc`` or
    ``val/bleu_averaged`` are matched last first."""
    for part in reversed(re.split(r"[/_]", metric.lower())):
        if part in HIGHER:
            return "max"
        if part in LOWER:
            return "min"
    return None


def optimization_direction(metric: str, monitor: str, monitor_mode) -> str:
    """Optuna's direction for ``optimized_metric``: the metric's own (``val/loss`` is minimized even when the
    checkpoint monitor is ``val/bleu``), else ``monitor_mode`` when the metric is the monitor. A monitor whose mode
    contradicts its name is refused, as is an unknown metric that is not the monitor."""
    mode = getattr(monitor_mode, "value", monitor_mode)  # the schema's MonitorMode enum or a plain string
    if mode not in MODES:
        raise ValueError(f"monitor_mode={monitor_mode!r} has no optimization direction; allowed: {', '.join(MODES)}")
    known = metric_mode(metric)
    if known is None:
        if metric != monitor:
            raise ValueError(f"optimized_metric={metric!r} is not monitor={monitor!r} and its direction is unknown "
                             f"(known: higher {', '.join(HIGHER)}; lower {', '.join(LOWER)}); set "
                             "hydra.sweeper.direction=minimize or maximize")
        return MODES[mode]
    if metric == monitor and mode != known:
        raise ValueError(f"monitor={monitor!r} with monitor_mode={mode!r}, but {metric} is better when "
                         f"{'higher' if known == 'max' else 'lower'}: set monitor_mode={known}")
    return MODES[known]
