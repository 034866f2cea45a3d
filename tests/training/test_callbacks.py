"""Early stopping on the run's monitored metric: off unless ``callbacks.early_stopping.patience`` is set, then
training stops after that many validations without improvement."""
from __future__ import annotations

import pytest
import pytorch_lightning as pl
from training_support import LineFit, line_data
from pytorch_lightning.callbacks import EarlyStopping

from attnlab.cli.build import instantiate_all
from attnlab.training.callbacks import early_stopping


def test_early_stopping_is_off_by_default_and_follows_the_monitor_when_on(compose):
    for experiment in ("transformer_mt", "seq2seq_bahdanau", "nw_parametric", "bert_pretrain"):
        callbacks = instantiate_all(compose(f"experiment={experiment}").callbacks)
        assert not any(isinstance(callback, EarlyStopping) for callback in callbacks), experiment
    cfg = compose("experiment=transformer_mt", "callbacks.early_stopping.patience=3",
                  "callbacks.early_stopping.min_delta=0.5")
    (stopping,) = [c for c in instantiate_all(cfg.callbacks) if isinstance(c, EarlyStopping)]
    assert (stopping.monitor, stopping.mode, stopping.patience, abs(stopping.min_delta)) == ("val/bleu", "max", 3, 0.5)
    cfg = compose("experiment=nw_parametric", "callbacks.early_stopping.patience=2")
    (stopping,) = [c for c in instantiate_all(cfg.callbacks) if isinstance(c, EarlyStopping)]
    assert (stopping.monitor, stopping.mode) == ("val/mse", "min")


def test_training_stops_after_patience_validations_without_improvement(tmp_path):
    module, data = LineFit(lr=0.0), line_data()  # nothing learns: the first validation stays the best
    trainer = pl.Trainer(default_root_dir=tmp_path, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, max_epochs=20,
                         callbacks=[early_stopping("val/mse", "min", patience=2)])
    trainer.fit(module, datamodule=data)
    assert trainer.current_epoch == 3 and trainer.global_step == 30  # best after epoch 1, two flat ones, stop


def test_early_stopping_arguments_are_checked():
    assert early_stopping("val/loss", "min", patience=None) is None
    with pytest.raises(ValueError, match="mode must be min or max, got 'up'"):
        early_stopping("val/loss", "up", patience=2)
    with pytest.raises(ValueError, match="patience must be an int >= 1 or null \\(off\\), got 0"):
        early_stopping("val/loss", "min", patience=0)
    with pytest.raises(ValueError, match="min_delta must be >= 0, got -1"):
        early_stopping("val/loss", "min", patience=1, min_delta=-1)
