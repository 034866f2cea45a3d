"""Checkpoint averaging (Vaswani et al., 2017, sec. 6.1) that cannot silently make a model worse.

Averaging points along the end of the trajectory smooths out the noise of the last updates, which usually gains a
little BLEU for free; averaging points from early in training, when the weights still move far, gives a much
worse model (a time-stopped run that averaged its epochs 1-5 scored 18.6 held-out BLEU against 28.0). So
``AverageCheckpoints`` snapshots the weights evenly over the final part of training only (``num_checkpoints``
snapshots spaced over the last ``span_epochs``, ending at the final step; :func:`on_snapshot_grid`), averages those, and
:func:`choose_weights` then scores the averaged and the last weights on validation and keeps the better:
its choice, with both scores, is ``checkpoints/selected.json``, which ``attnlab-eval ckpt_path=<run dir>``
follows. ``average_checkpoints`` is the pure operation, and ``attnlab-average`` (``attnlab.cli.average``) runs it
on any files.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pytorch_lightning as pl
from torch import Tensor

from attnlab import MissingFileError
from attnlab.training.checkpoint import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)
SELECTION_FILE = "selected.json"  # beside averaged.ckpt: which weights the run tests and attnlab-eval picks
_STEP = re.compile(r"^step-(\d+)\.ckpt$")  # a snapshot's file name
def _state_dict(checkpoint: dict[str, Any], path: Path) -> dict[str, Tensor]:
    state = checkpoint.get("state_dict", checkpoint)  # a Lightning checkpoint or a plain state dict
    if not state or not all(isinstance(value, Tensor) for value in state.values()):
        raise ValueError(f"{path} holds no state dict of tensors")
    return state


def average_checkpoints(paths: Sequence[str | Path]) -> dict[str, Tensor]:
    """Element-wise mean of the floating-point weights of ``paths`` (loaded weights-only); integer buffers
    (counters) are taken from the last file. All files must hold the same keys and shapes."""
    if not paths:
        raise ValueError("average_checkpoints needs at least one checkpoint path, got none")
    paths = [Path(p) for p in paths]
    first = _state_dict(load_checkpoint(paths[0]), paths[0])
    dtypes = {key: value.dtype for key, value in first.items()}
    total = {key: value.double() if value.is_floating_point() else value for key, value in first.items()}
    for path in paths[1:]:
        state = _state_dict(load_checkpoint(path), path)
        if state.keys() != total.keys():
            differing = sorted(set(state) ^ set(total))[:5]
            raise ValueError(f"{path} and {paths[0]} hold different weights (e.g. {differing}); cannot average them")
        for key, value in state.items():
            if value.shape != total[key].shape:
                raise ValueError(
                    f"{key} has shape {tuple(value.shape)} in {path} but {tuple(total[key].shape)} in {paths[0]}"
                )
            total[key] = total[key] + value.double() if value.is_floating_point() else value
    return {
        key: (value / len(paths)).to(dtypes[key]) if value.is_floating_point() else value
        for key, value in total.items()
    }


def latest_checkpoints(directory: str | Path, num_checkpoints: int, pattern: str = "*.ckpt") -> list[Path]:
    """The ``num_checkpoints`` newest files (by modification time) matching ``pattern`` in ``directory``,
    oldest first."""
    if num_checkpoints < 1:
        raise ValueError(f"num_checkpoints must be >= 1, got {num_checkpoints}")
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no checkpoint directory {directory}")
    files = sorted(directory.glob(pattern), key=lambda path: path.stat().st_mtime_ns)
    return files[-num_checkpoints:]


def write_averaged_checkpoint(paths: Sequence[str | Path], output: str | Path) -> Path:
    """Save the last of ``paths`` with its weights replaced by the average of all, so that the result keeps
    the run config and tokenizer and works with attnlab-eval / attnlab-translate."""
    averaged = average_checkpoints(paths)
    checkpoint = load_checkpoint(paths[-1])
    if "state_dict" in checkpoint:
        checkpoint["state_dict"] = averaged
        checkpoint["averaged_from"] = [str(p) for p in paths]
    else:
        checkpoint = averaged
    return save_checkpoint(checkpoint, output)


def on_snapshot_grid(step: int, gap: float, anchor: int) -> bool:
    """Whether ``step`` is one of ``anchor - round(j * gap)`` for an integer j: snapshot steps ``gap`` apart
    (rounded) that include ``anchor``, the planned final step. ``gap`` must be >= 1."""
    j = round((anchor - step) / gap)
    return anchor - round(j * gap) == step


class Choice(NamedTuple):
    name: str  # the chosen candidate, e.g. "averaged"
    path: Path  # its checkpoint
    scores: dict[str, float]  # every candidate's validation score


class AverageCheckpoints(pl.Callback):
    """Snapshot the weights ``num_checkpoints`` times over the last ``span_epochs`` of training and average them.

    Every ``gap = span_epochs * steps per epoch / num_checkpoints`` optimizer steps (rounded, counted back from the
    planned final step: ``max_steps``, or ``max_epochs`` times the epoch) the full checkpoint goes to
    ``dirpath/step-<n>.ckpt`` and only the newest ``num_checkpoints`` are kept, so a run that reaches its planned end
    averages snapshots evenly spaced over the span, the last at the final step (1,177 steps, 5 over one epoch: steps
    235, 471, 706, 942, 1177). A run stopped before (``max_time``, early stopping; an open-ended run counts from
    step 0) snapshots its final weights too, and averages them with the newest grid snapshots of the span. The
    result and the final snapshot are :attr:`candidates` for :func:`choose_weights`.
    """

    def __init__(self, dirpath: str, output: str, num_checkpoints: int = 5, span_epochs: float = 1.0):
        if num_checkpoints < 1:
            raise ValueError(f"num_checkpoints must be >= 1, got {num_checkpoints}")
        if not span_epochs > 0:
            raise ValueError(f"span_epochs must be > 0, got {span_epochs}")
        self.dirpath, self.output = Path(dirpath), Path(output)
        self.num_checkpoints, self.span_epochs = num_checkpoints, span_epochs
        self.gap = 1.0  # optimizer steps between snapshots, set when training starts
        self.anchor = 0  # the planned final step, on the snapshot grid (0: open-ended run)
        self.candidates: dict[str, Path] = {}  # {"averaged": output, "last": final snapshot} once averaged
        self._saved_step: int | None = None  # the last snapshot's step (never a file check: ranks must agree)
        self._validated: tuple[int, dict[str, float]] = (-1, {})  # the latest validation: (step, its metrics)
        self.last_scores: dict[str, float] = {}  # the metrics of a validation of the final weights, if one ran

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        batches = trainer.num_training_batches
        if math.isinf(batches):
            raise ValueError("AverageCheckpoints needs a training loader of known length to space its snapshots")
        steps_per_epoch = math.ceil(batches / trainer.accumulate_grad_batches)
        self.gap = max(1.0, self.span_epochs * steps_per_epoch / self.num_checkpoints)
        planned = trainer.estimated_stepping_batches  # inf for an open-ended (time-boxed) run
        self.anchor = int(planned) if math.isfinite(planned) else 0
        self.candidates, self.last_scores, self._saved_step, self._validated = {}, {}, None, (-1, {})

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._validated = (trainer.global_step, {k: float(v) for k, v in trainer.callback_metrics.items()})

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if step > 0 and on_snapshot_grid(step, self.gap, self.anchor) and step != self._saved_step:
            self._snapshot(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        final = trainer.global_step
        if final == 0:
            return
        if final != self._saved_step:
            self._snapshot(trainer)
        if trainer.is_global_zero:
            span = self.gap * self.num_checkpoints  # the final part of training, in optimizer steps
            kept = [(step, path) for step, path in self._snapshots() if final - span < step <= final]
            kept = kept[-self.num_checkpoints :]
            write_averaged_checkpoint([path for _, path in kept], self.output)
            log.info("averaged %d snapshots (steps %s) into %s", len(kept), [step for step, _ in kept], self.output)
        trainer.strategy.barrier("averaged checkpoint written")
        self.candidates = {"averaged": self.output, "last": self._path(final)}
        step, metrics = self._validated
        self.last_scores = metrics if step == final else {}  # the final weights were validated: no need again

    def choose(self, trainer: pl.Trainer, module: pl.LightningModule, datamodule: pl.LightningDataModule, *,
               monitor: str, mode: str) -> Choice:
        """:func:`choose_weights` between the averaged and the last weights after ``fit`` (a validation of the final
        weights is reused), recorded in ``selected.json`` beside ``output``; a run without validation
        (``limit_val_batches=0``) keeps the last weights, unscored."""
        if not self.candidates:
            raise ValueError("nothing to choose from: no training has ended since this callback was attached")
        record = self.output.parent / SELECTION_FILE
        if trainer.limit_val_batches == 0:  # nothing to score the averaged weights on: keep what training produced
            log.warning("validation is off (trainer.limit_val_batches=0): the averaged weights %s are not scored, "
                        "the last weights are kept", self.output)
            return record_choice(trainer, Choice("last", self.candidates["last"], {}), monitor=monitor, mode=mode,
                                 record=record)
        known = {"last": self.last_scores[monitor]} if monitor in self.last_scores else {}
        return choose_weights(trainer, module, datamodule, self.candidates, monitor=monitor, mode=mode,
                              record=record, known=known)

    def _path(self, step: int) -> Path:
        return self.dirpath / f"step-{step}.ckpt"

    def _snapshots(self) -> list[tuple[int, Path]]:
        """``(step, path)`` of the snapshots in ``dirpath``, oldest first."""
        found = [(_STEP.search(path.name), path) for path in self.dirpath.glob("step-*.ckpt")]
        return sorted((int(match.group(1)), path) for match, path in found if match)

    def _snapshot(self, trainer: pl.Trainer) -> None:
        """Save the full checkpoint (collective: every rank calls it, rank 0 writes) and keep the newest n."""
        # a full checkpoint (eval needs its config); said explicitly, else Lightning announces its default
        trainer.save_checkpoint(self._path(trainer.global_step), weights_only=False)
        self._saved_step = trainer.global_step
        if trainer.is_global_zero:
            for _, path in self._snapshots()[: -self.num_checkpoints]:
                path.unlink()


def choose_weights(
    trainer: pl.Trainer, module: pl.LightningModule, datamodule: pl.LightningDataModule, candidates: dict[str, Path],
    *, monitor: str, mode: str, record: Path, known: dict[str, float] | None = None,
) -> Choice:
    """Validate every candidate checkpoint (except those whose score is ``known``), log each one's ``monitor`` as
    ``<monitor>_<name>`` (e.g. ``val/bleu_averaged``, ``val/bleu_last``) and keep the better (on a tie the first);
    the choice is recorded by :func:`record_choice`. The chosen weights are validated last (again, where another
    candidate was validated after them), so that what a validation leaves (the logged ``val/*`` metrics, the
    trainer's ``callback_metrics``, a task's files such as ``translations/val.*``) describes them."""
    mode = getattr(mode, "value", mode)  # the schema's MonitorMode enum or a plain string
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be min or max, got {mode!r}")
    if not candidates:
        raise ValueError("choose_weights needs at least one candidate checkpoint, got none")

    def validate(path: Path) -> dict[str, float]:
        results = trainer.validate(module, datamodule=datamodule, ckpt_path=str(path), verbose=False, weights_only=True)
        return results[0] if results else {}

    scores, validated = {}, None  # validated: the candidate whose validation ran last
    for name, path in candidates.items():
        if name in (known or {}):
            scores[name] = float(known[name])
            continue
        found, validated = validate(path), name
        if monitor not in found:
            raise ValueError(f"validating {path} logged no {monitor!r} to choose by; it logged {sorted(found)}")
        scores[name] = float(found[monitor])
    pick = next(iter(scores))
    for name, score in scores.items():
        if (score < scores[pick]) if mode == "min" else (score > scores[pick]):
            pick = name
    if validated not in (None, pick):
        validate(candidates[pick])
    return record_choice(trainer, Choice(pick, Path(candidates[pick]), scores), monitor=monitor, mode=mode,
                         record=record)


def record_choice(trainer: pl.Trainer, choice: Choice, *, monitor: str, mode: str, record: Path) -> Choice:
    """Log each scored candidate as ``<monitor>_<name>`` and write the choice, its path relative to ``record``'s
    folder and the scores to the JSON file ``record`` (on rank 0)."""
    mode = getattr(mode, "value", mode)  # the schema's MonitorMode enum or a plain string
    scores, pick = choice.scores, choice.name
    for logger in trainer.loggers if scores else ():
        logger.log_metrics({f"{monitor}_{name}": score for name, score in scores.items()}, step=trainer.global_step)
        logger.save()
    if trainer.is_global_zero:
        record.parent.mkdir(parents=True, exist_ok=True)
        checkpoint = os.path.relpath(choice.path, record.parent)
        saved = {"checkpoint": checkpoint, "name": pick, "monitor": monitor, "mode": mode, "scores": scores}
        record.write_text(json.dumps(saved, indent=2) + "\n")
    summary = ", ".join(f"{name} {score:.4f}" for name, score in scores.items()) or "not scored"
    log.info("%s on validation: %s; keeping the %s weights (%s)", monitor, summary, pick, choice.path)
    return choice


def selected_checkpoint(run_dir: str | Path) -> Path:
    """The checkpoint a run dir stands for: the one its ``checkpoints/selected.json`` names (the better of the
    averaged and the last weights on validation), else its single best-by-monitor checkpoint, else
    ``last.ckpt``."""
    directory = Path(run_dir) / "checkpoints"
    record = directory / SELECTION_FILE
    if record.is_file():
        return directory / json.loads(record.read_text())["checkpoint"]
    best = sorted(directory.glob("best-*.ckpt"))
    if len(best) == 1:
        return best[0]
    if (directory / "last.ckpt").is_file():
        return directory / "last.ckpt"
    raise MissingFileError(
        f"{run_dir} holds none of checkpoints/{SELECTION_FILE}, one checkpoints/best-*.ckpt (found {len(best)}) "
        "or checkpoints/last.ckpt; pass a checkpoint file as ckpt_path"
    )
