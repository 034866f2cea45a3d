"""TextSpec, the data's contract with the model: typed, checked, and exactly the ``???`` leaves it fills."""
import pytest
from omegaconf import OmegaConf

from attnlab.cli.validate import fill_missing
from attnlab.data.spec import TextSpec
from attnlab.data.synthetic import NWSyntheticDataModule


def test_as_dict_holds_the_set_fields_and_fills_those_leaves_only():
    spec = TextSpec(src_vocab_size=30, tgt_vocab_size=20, pad_id=1, bos_id=2, eos_id=3)
    assert spec.as_dict() == {"src_vocab_size": 30, "tgt_vocab_size": 20, "pad_id": 1, "bos_id": 2, "eos_id": 3}
    cfg = OmegaConf.create({"net": {"src_vocab_size": "???", "tgt_vocab_size": "???", "pad_id": "???",
                                    "bos_id": 7, "max_len": "???"}})
    assert sorted(fill_missing(cfg, spec.as_dict())) == ["net.pad_id", "net.src_vocab_size", "net.tgt_vocab_size"]
    assert cfg.net.bos_id == 7 and OmegaConf.is_missing(cfg.net, "max_len")  # set values win; unknown stays ???


def test_synthetic_data_has_an_empty_spec():
    assert NWSyntheticDataModule().spec() == TextSpec() and TextSpec().as_dict() == {}


@pytest.mark.parametrize("fields, message", [
    ({"vocab_size": 0}, "vocab_size must be an int >= 1 or None, got 0"),
    ({"vocab_size": 10, "pad_id": -1}, "pad_id must be an int >= 0 or None, got -1"),
    ({"num_classes": 2.0}, "num_classes must be an int >= 1 or None, got 2.0"),
    ({"max_len": True}, "max_len must be an int >= 1 or None, got True"),
    ({"vocab_size": 10, "pad_id": 10}, "pad_id=10 names no token of a vocabulary of 10 tokens"),
    ({"src_vocab_size": 50, "tgt_vocab_size": 5, "eos_id": 7}, "eos_id=7 names no token of a vocabulary of 5"),
    ({"pad_id": 0}, "pad_id=0 names no token of a vocabulary of None tokens"),
])
def test_a_bad_value_is_named(fields, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TextSpec(**fields)


def test_a_spec_is_frozen():
    with pytest.raises(AttributeError):
        TextSpec(vocab_size=3).vocab_size = 4
