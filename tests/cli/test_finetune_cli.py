"""End to end: pretrain a tiny BERT with attnlab-train, fine-tune it on a tiny SST-2-format file, predict with
attnlab-predict; the error a user sees for missing data, and that model.pretrained must be given."""
from __future__ import annotations

import csv
import gzip
import json

import hydra
import pytest
import torch
from conftest import run_dirs
from omegaconf import OmegaConf
from review_data import write_data

from attnlab.cli.predict import predict
from attnlab.inference.restore import restore_run
from attnlab.cli.train import train
from attnlab.cli.validate import ConfigError
from attnlab.data.classification_inputs import encode_texts, normalize
from attnlab.data.tokenizers import TextTokenizer
from attnlab.training.checkpoint import CONFIG_KEY, load_run_checkpoint
from attnlab.lit.predictions import read_predictions
from attnlab.lit.pretrained import encoder_config
from attnlab.models.bert_interop import to_hf_state_dict

TINY_BERT = ["model.net.bert.d_model=16", "model.net.bert.num_heads=2", "model.net.bert.block.d_ff=32",
             "model.net.bert.num_layers=1"]
RUN = ["callbacks.progress_bar=null", "trainer.enable_model_summary=false"]


def last_value(run_dir, metric):
    rows = list(csv.DictReader(open(run_dir / "csv" / "metrics.csv")))
    return float([row[metric] for row in rows if row.get(metric)][-1])


def test_pretrain_then_fine_tune_then_predict(run_cli, tmp_path):
    data = tmp_path / "data"
    write_data(data)
    env = {"DATA_DIR": str(data)}
    run_cli("attnlab-train", "experiment=bert_pretrain", "tokenizer.min_freq=1", *TINY_BERT, "data.batch_size=16",
            "data.max_len=32", "trainer.max_epochs=1", "test=false", *RUN, env=env)
    (pretrain_dir,) = run_dirs(tmp_path, "bert_pretrain")
    pretrained = pretrain_dir / "checkpoints" / "last.ckpt"

    # the fine-tuning config keeps d2l's sizes (128 hidden, 2 layers): the pretrained file's must win
    run_cli("attnlab-train", "experiment=bert_finetune_sst2", f"model.pretrained={pretrained}", "data.max_len=24",
            "data.batch_size=16", "data.val_fraction=0.2", "trainer.max_epochs=2", "trainer.val_check_interval=1.0", *RUN,
            env=env)
    (run_dir,) = run_dirs(tmp_path, "bert_finetune_sst2")
    assert f"encoder loaded from {pretrained}" in (run_dir / "train.log").read_text()
    (best,) = (run_dir / "checkpoints").glob("best-*.ckpt")
    checkpoint = load_run_checkpoint(best)
    net = checkpoint[CONFIG_KEY]["model"]["net"]
    bert = encoder_config(checkpoint[CONFIG_KEY]["model"], "net.bert")
    assert (bert["d_model"], bert["num_layers"], bert["block"]["d_ff"], bert["max_len"], net["num_classes"]) == (16, 1, 32, 24, 2)
    assert bert["dropout"] == bert["block"]["dropout"] == net["dropout"]  # the fine-tuning's, not the pretraining's
    pretraining = load_run_checkpoint(pretrained)
    assert checkpoint["ClassificationDataModule"]["tokenizer"] == pretraining["WikiText2DataModule"]["tokenizer"]

    # attnlab-predict over the test split (SST-2's dev file) with the best checkpoint: its accuracy is test/acc
    lines = gzip.open(data / "sst2" / "dev.tsv.gz", "rt").read().splitlines()[1:]
    texts, labels = zip(*(line.split("\t") for line in lines))
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    result = run_cli("attnlab-predict", f"ckpt_path={best}", f"input={tmp_path / 'texts.txt'}")
    predictions = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(predictions) == len(texts) and {label for label, _ in predictions} <= {"negative", "positive"}
    accuracy = sum((label == "positive") == (gold == "1") for (label, _), gold in zip(predictions, labels)) / len(labels)
    assert abs(accuracy - last_value(run_dir, "test/acc")) < 1e-6
    # the test itself wrote each example's label and prediction (class indices: "0" negative, "1" positive)
    written_labels, written = read_predictions(run_dir / "predictions" / "test.tsv")
    assert written_labels == list(labels) and written == ["1" if label == "positive" else "0" for label, _ in predictions]

    # the same probabilities, recomputed here from the checkpoint's config, weights and tokenizer
    classifier = hydra.utils.instantiate(net)
    classifier.load_state_dict({k[len("net.") :]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")})
    tokenizer = TextTokenizer.from_str(checkpoint["ClassificationDataModule"]["tokenizer"])
    batch = encode_texts(tokenizer, [[normalize(text, lowercase=True) for text in texts]], max_len=24)
    with torch.no_grad():
        probabilities = classifier.eval()(batch.tokens, batch.segments, batch.valid_lens).logits.softmax(-1).max(-1).values
    assert torch.allclose(torch.tensor([float(p) for _, p in predictions]), probabilities, atol=1e-5)

    # the same encoder as a Hugging Face model directory (weights, tokenizer.json, config.json) fine-tunes too
    hf = tmp_path / "hf"
    hf.mkdir()
    torch.save(to_hf_state_dict(restore_run(pretrained).module.net), hf / "pytorch_model.bin")
    TextTokenizer.from_str(pretraining["WikiText2DataModule"]["tokenizer"]).save(hf / "tokenizer.json")
    (hf / "config.json").write_text(json.dumps({"hidden_size": 16, "num_attention_heads": 2, "num_hidden_layers": 1,
                                                "intermediate_size": 32, "layer_norm_eps": 1e-5}))
    run_cli("attnlab-train", "experiment=bert_finetune_sst2", f"model.pretrained={hf / 'pytorch_model.bin'}",
            "data.max_len=24", "data.batch_size=16", "data.val_fraction=0.2", "trainer.max_epochs=1", "test=false",
            "norm.placement=pre", *RUN, env=env)  # the file's post-norm must win over the command line's pre
    hf_run = next(d for d in run_dirs(tmp_path, "bert_finetune_sst2") if d != run_dir)
    assert f"encoder loaded from {hf / 'pytorch_model.bin'}" in (hf_run / "train.log").read_text()
    hf_config = load_run_checkpoint(hf_run / "checkpoints" / "last.ckpt")[CONFIG_KEY]["model"]
    hf_encoder = encoder_config(hf_config, "net.bert")
    block = hf_encoder["block"]
    assert (block["_target_"], hf_encoder["norm"]["eps"], block["d_ff"]) == ("attnlab.layers.blocks.PostNormBlock", 1e-5, 32)

    # a checkpoint of an older attnlab (its data config read the pretrained file itself) fails naming the key
    checkpoint[CONFIG_KEY]["data"]["tokenizer_from"] = str(pretrained)
    torch.save(checkpoint, tmp_path / "older.ckpt")
    with pytest.raises(ConfigError, match=r"data.tokenizer_from is not an argument of .*ClassificationDataModule"):
        predict(tmp_path / "older.ckpt", ["a film"])


def test_missing_data_is_a_clear_error(run_cli, tmp_path):
    result = run_cli("attnlab-train", "experiment=bert_finetune_sst2", "model.pretrained=null", check=False,
                     env={"DATA_DIR": str(tmp_path / "nowhere")})
    assert result.returncode != 0
    assert f"no such file: {tmp_path / 'nowhere' / 'sst2' / 'train.tsv.gz'}. How to get it: download GLUE's SST-2" in result.stderr
    assert "Epoch" not in result.stdout


@pytest.mark.parametrize("experiment", ["bert_finetune_sst2", "bert_finetune_snli"])
def test_fine_tuning_requires_model_pretrained_a_file_or_null(compose, experiment):
    """``model.pretrained`` is ``???``: attnlab-train stops, before reading any data, rather than silently training
    from scratch; the data config never reads it (attnlab-train hands the data the pretrained tokenizer)."""
    cfg = compose(f"experiment={experiment}")
    assert "model.pretrained" in OmegaConf.missing_keys(cfg)
    assert "pretrained" not in OmegaConf.to_yaml(cfg.data) and cfg.pretrained_encoder == "net.bert"
    assert (cfg.monitor, cfg.monitor_mode) == ("val/acc", "max")
    with pytest.raises(ConfigError, match=r"^model.pretrained is required: a pretrained model file .* or null"):
        train(cfg)
