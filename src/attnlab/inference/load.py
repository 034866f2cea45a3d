"""``attnlab.load(path)``: a trained run, read once, as the object of its model family."""
from __future__ import annotations

from pathlib import Path

import torch

from attnlab.inference.bert import LoadedBertClassifier, LoadedBertPretraining
from attnlab.inference.loaded import LoadedModel
from attnlab.inference.regression import LoadedNadarayaWatson
from attnlab.inference.restore import restore_run
from attnlab.inference.translation import LoadedTranslator
from attnlab.lit.classification import ClassificationModule
from attnlab.lit.pretraining import PretrainingModule
from attnlab.lit.regression import KernelRegressionModule
from attnlab.lit.seq2seq import Seq2SeqModule

FAMILIES: dict[type, type[LoadedModel]] = {  # the run's LightningModule -> what it loads as
    Seq2SeqModule: LoadedTranslator,
    PretrainingModule: LoadedBertPretraining,
    ClassificationModule: LoadedBertClassifier,
    KernelRegressionModule: LoadedNadarayaWatson,
}


def load(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """The model of a checkpoint, or of a run dir (the checkpoint its ``checkpoints/selected.json`` names, as
    ``attnlab-eval`` takes it), with its tokenizers, in eval mode on ``device``. The file is read once, weights
    only; a missing, corrupt or foreign file is an error naming it."""
    run = restore_run(path)
    family = FAMILIES.get(type(run.module))
    if family is None:
        known = ", ".join(f"{module.__name__} ({loaded.family})" for module, loaded in FAMILIES.items())
        raise ValueError(f"{run.checkpoint_path} holds a {type(run.module).__name__}, which attnlab.load does not "
                         f"read; it reads {known}")
    return family(run, device)
