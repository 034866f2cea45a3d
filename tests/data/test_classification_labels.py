"""Classification labels: configured as a list or a mapping (also from the command line), or inferred from the
training file; either way saved with the DataModule state so a checkpoint names its classes without the files."""
from __future__ import annotations

import logging

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from attnlab.cli.resolvers import register_resolvers
from attnlab.cli.schema import register_schemas
from attnlab.data.classification import ClassificationDataModule
from attnlab.data.tokenizers import word

CLASSES = ["sport", "art", "food", "war", "law", "tech"]  # a 6-class dataset of the user's own


def write_topics(path, classes=CLASSES, rows_per_class=6):
    rows = [f"text {k} about {label} {i}\t{label}" for k, label in enumerate(classes) for i in range(rows_per_class)]
    path.write_text("sentence\tlabel\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def topics_module(tmp_path, labels=None, **kwargs):
    train, test = write_topics(tmp_path / "train.tsv"), write_topics(tmp_path / "test.tsv", rows_per_class=1)
    return ClassificationDataModule(train, test, ["sentence"], labels, tokenizer=lambda: word(min_freq=1),
                                    val_fraction=0.25, max_len=16, batch_size=4, **kwargs)


def test_labels_are_inferred_sorted_logged_and_saved_with_the_state(tmp_path, caplog):
    module = topics_module(tmp_path)
    with caplog.at_level(logging.INFO, logger="attnlab.data.classification"):
        module.setup("fit")
    assert module.label_values == module.label_names == sorted(CLASSES) and module.num_classes == 6
    assert f"sorted: {sorted(CLASSES)}" in caplog.text
    test = module.splits["test"]
    assert [module.label_names[i] for i in test.labels.tolist()] == CLASSES  # test file rows, one per class
    assert module.spec().num_classes == 6
    state = module.state_dict()
    assert state["labels"] == state["label_names"] == sorted(CLASSES)
    restored = ClassificationDataModule(tmp_path / "gone.tsv", tmp_path / "gone.tsv", ["sentence"], None, tokenizer=word,
                                        max_len=16)
    with pytest.raises(RuntimeError, match="call setup"):
        restored.num_classes
    restored.load_state_dict(state)  # what attnlab-predict does: no file is read
    assert restored.label_names == sorted(CLASSES) and restored.num_classes == 6
    assert torch.equal(restored.encode(["text about food"]).tokens, module.encode(["text about food"]).tokens)


@pytest.mark.parametrize(
    "labels, names",
    [
        (["war", "art", "sport", "food", "law", "tech"], ["war", "art", "sport", "food", "law", "tech"]),
        ({label: label.upper() for label in CLASSES}, [label.upper() for label in CLASSES]),
    ],
)
def test_a_list_or_a_mapping_fixes_the_class_order_and_names(tmp_path, labels, names):
    module = topics_module(tmp_path, labels)
    module.setup("fit")
    assert module.label_values == list(labels) and module.label_names == names
    assert [module.label_values[i] for i in module.splits["test"].labels.tolist()] == CLASSES
    assert module.state_dict()["label_names"] == names


def test_numeric_keys_from_the_command_line_match_the_file_and_bad_labels_fail_early(tmp_path):
    module = topics_module(tmp_path, {0: "negative", 1: "positive"})  # Hydra parses {0:negative} with int keys
    assert module.label_values == ["0", "1"]
    for bad, match in ((["only"], "two or more distinct"), (["a", "a"], "two or more distinct"), ("ab", "a list")):
        with pytest.raises(ValueError, match=match):
            topics_module(tmp_path, bad)
    with pytest.raises(ValueError, match=r"train.tsv:20: label 'war' is not one of \['sport', 'art', 'food'\]"):
        topics_module(tmp_path, ["sport", "art", "food"]).setup("fit")  # the configured list wins over the file
    write_topics(tmp_path / "one.tsv", classes=["sport"])
    single = ClassificationDataModule(tmp_path / "one.tsv", tmp_path / "one.tsv", ["sentence"], tokenizer=word)
    with pytest.raises(ValueError, match=r"one.tsv: labels \['sport'\]; a classifier needs two or more"):
        single.setup("fit")


def test_custom_dataset_without_the_cli_trains_and_its_checkpoint_names_the_classes(tmp_path):
    module = topics_module(tmp_path)

    class BagOfWords(pl.LightningModule):  # the smallest classifier over the batches
        def __init__(self, vocab_size: int, num_classes: int):
            super().__init__()
            self.embedding = torch.nn.EmbeddingBag(vocab_size, num_classes)

        def training_step(self, batch, _):
            logits = self.embedding(batch.tokens)  # (B, C)
            return torch.nn.functional.cross_entropy(logits, batch.labels)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.5)

    module.setup("fit")
    spec = module.spec()
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path, limit_val_batches=0)
    trainer.fit(BagOfWords(spec.vocab_size, spec.num_classes), datamodule=module)
    checkpoint = torch.load(trainer.checkpoint_callback.best_model_path, weights_only=True)
    restored = ClassificationDataModule(tmp_path / "gone.tsv", tmp_path / "gone.tsv", ["sentence"], tokenizer=word)
    restored.load_state_dict(checkpoint["ClassificationDataModule"])
    assert restored.label_names == sorted(CLASSES) and restored.tokenizer == module.tokenizer


@pytest.fixture
def compose_data(tmp_path):
    register_schemas()
    register_resolvers()
    train, test = write_topics(tmp_path / "train.tsv"), write_topics(tmp_path / "test.tsv", rows_per_class=1)

    def _compose(experiment: str, *overrides: str):
        GlobalHydra.instance().clear()
        with initialize_config_module("attnlab.conf", version_base="1.3"):
            files = [f"data.train_file={train}", f"data.test_file={test}", "data.val_file=null",
                     "data.text_columns=[sentence]", "model.pretrained=null"]
            cfg = compose("train", overrides=[f"experiment={experiment}", *files, *overrides])
        module = instantiate(cfg.data)
        module.setup("fit")
        return module

    yield _compose
    GlobalHydra.instance().clear()


@pytest.mark.parametrize("experiment", ["bert_finetune_sst2", "bert_finetune_snli"])
def test_labels_from_the_command_line_as_a_list_a_mapping_or_null(compose_data, experiment):
    listed = compose_data(experiment, "data.labels=[war,art,sport,food,law,tech]")
    assert listed.label_names == ["war", "art", "sport", "food", "law", "tech"]
    mapped = compose_data(experiment, "data.labels={sport:S,art:A,food:F,war:W,law:L,tech:T}")
    assert mapped.label_values == CLASSES and mapped.label_names == list("SAFWLT")
    inferred = compose_data(experiment, "data.labels=null")
    assert inferred.label_names == sorted(CLASSES)
