"""TextTokenizer builders: round trips, min_freq, stable special ids, JSON persistence, and early errors."""
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from attnlab.data.tokenizers import TextTokenizer, bpe, word, wordpiece

MT_SPECIALS = ["<unk>", "<pad>", "<bos>", "<eos>"]
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TEXTS = [
    "the cat sat on the mat .",
    "the dog sat on the log .",
    "a cat and a dog !",
    "où est le chat ?",
    "le chat est là .",
    "the unrelatedness of things .",
]
CONF = Path(__file__).resolve().parents[2] / "conf" / "tokenizer"


def test_word_round_trip_and_min_freq():
    tok = word(min_freq=2).train(TEXTS, MT_SPECIALS)
    vocab = {tok.id_to_token(i) for i in range(tok.vocab_size)}
    # every token seen twice or more is in; single occurrences are out (d2l Vocab min_freq)
    assert {"the", "cat", "sat", "on", ".", "dog", "a", "chat", "le", "est"} <= vocab
    assert not {"mat", "log", "où", "là", "unrelatedness", "things", "!", "?", "and"} & vocab
    ids = tok.encode_batch(["the cat sat on the mat ."])[0]
    assert ids[-2] == tok.token_to_id("<unk>")  # "mat" is rare
    assert tok.decode_batch([ids]) == ["the cat sat on the ."]  # unk is special, so skipped
    full = word(min_freq=1).train(TEXTS, MT_SPECIALS)
    assert full.decode_batch(full.encode_batch(TEXTS)) == TEXTS


def test_word_lowercase_option():
    tok = word(min_freq=1, lowercase=True).train(["The Cat", "the cat"], MT_SPECIALS)
    assert tok.encode_batch(["THE CAT"]) == tok.encode_batch(["the cat"])
    cased = word(min_freq=1).train(["The Cat", "the cat"], MT_SPECIALS)
    assert cased.encode_batch(["The Cat"]) != cased.encode_batch(["the cat"])


@pytest.mark.parametrize("builder", [bpe, wordpiece])
def test_subword_round_trip_restores_text(builder):
    tok = builder(vocab_size=120).train(TEXTS, MT_SPECIALS)
    texts = ["the cat sat on the log.", "a dog and the mat!"] if builder is wordpiece else TEXTS
    ids = tok.encode_batch(texts)
    assert all(tok.token_to_id("<unk>") not in row for row in ids)
    assert tok.decode_batch(ids) == texts
    # subwords: fewer pieces than characters, and an unseen word still encodes without unk
    assert len(tok.encode_batch(["unrelated cats"])[0]) < len("unrelated cats")


def test_wordpiece_lowercases_and_splits_punctuation():
    tok = wordpiece(vocab_size=120).train(TEXTS, BERT_SPECIALS)
    assert tok.decode_batch(tok.encode_batch(["The CAT sat."])) == ["the cat sat."]
    assert tok.unk_token == "[UNK]"


FRENCH = ["il a été élu président", "Où est la forêt", "le garçon a mangé une crêpe à Noël", "Ça ne coûte rien"]


@pytest.mark.parametrize(
    "builder, lowercase",
    [
        (lambda: word(min_freq=1), False),
        (lambda: word(min_freq=1, lowercase=True), True),
        (lambda: bpe(vocab_size=200), False),
        (lambda: wordpiece(vocab_size=200), True),
        (lambda: wordpiece(vocab_size=200, lowercase=False), False),
    ],
)
def test_accented_french_round_trips_with_case_as_configured(builder, lowercase):
    tok = builder().train(FRENCH * 2, MT_SPECIALS)
    ids = tok.encode_batch(FRENCH)
    assert all(tok.token_to_id("<unk>") not in row for row in ids)
    assert tok.decode_batch(ids) == [text.lower() if lowercase else text for text in FRENCH]


def test_wordpiece_strips_accents_only_when_asked():
    tok = wordpiece(vocab_size=200, strip_accents=True).train(FRENCH, MT_SPECIALS)
    assert tok.decode_batch(tok.encode_batch(["il a été élu"])) == ["il a ete elu"]
    assert tok.config["strip_accents"] and not wordpiece().config["strip_accents"]  # part of cache keys


@pytest.mark.parametrize("builder", [word, bpe, wordpiece])
@pytest.mark.parametrize("specials", [MT_SPECIALS, BERT_SPECIALS])
def test_special_ids_are_stable(builder, specials):
    for corpus in (TEXTS, TEXTS[::-1] + ["completely different words here"]):
        tok = builder().train(corpus, specials)
        assert [tok.token_to_id(s) for s in specials] == list(range(len(specials)))
        assert tok.specials == specials
        # specials are never produced by encoding plain text and are dropped by decoding
        assert tok.decode_batch([[tok.token_to_id(s) for s in specials]]) == [""]


@pytest.mark.parametrize("builder", [word, bpe, wordpiece])
def test_save_load_and_from_str_equality(builder, tmp_path):
    tok = builder().train(TEXTS, MT_SPECIALS)
    path = tok.save(tmp_path / "sub" / "tok.json")
    loaded = TextTokenizer.load(path)
    assert loaded == tok and loaded.vocab_size == tok.vocab_size
    assert loaded.encode_batch(TEXTS) == tok.encode_batch(TEXTS)
    assert TextTokenizer.from_str(tok.to_str()).decode_batch(tok.encode_batch(TEXTS)) == tok.decode_batch(
        tok.encode_batch(TEXTS)
    )
    other = builder().train(TEXTS[:2], MT_SPECIALS)
    assert other != tok
    with pytest.raises(ValueError, match="cannot be retrained"):
        loaded.train(TEXTS, MT_SPECIALS)


def test_errors_are_early_and_clear(tmp_path):
    with pytest.raises(ValueError, match="not trained"):
        word().encode_batch(["hi"])
    with pytest.raises(ValueError, match="not trained"):
        bpe().vocab_size
    with pytest.raises(ValueError, match="one unknown token"):
        word().train(TEXTS, ["<pad>", "<bos>"])
    with pytest.raises(ValueError, match="unique"):
        word().train(TEXTS, ["<unk>", "<unk>"])
    tok = word(min_freq=1).train(TEXTS, MT_SPECIALS)
    with pytest.raises(ValueError, match=r"'\[MASK\]' is not in the vocabulary"):
        tok.token_to_id("[MASK]")
    with pytest.raises(ValueError, match="out of range"):
        tok.id_to_token(10_000)
    with pytest.raises(ValueError, match="min_freq"):
        word(min_freq=0)
    with pytest.raises(ValueError, match="vocab_size"):
        bpe(vocab_size=-3)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        TextTokenizer.load(tmp_path / "nope.json")


@pytest.mark.parametrize("name, kind", [("word", "word"), ("bpe", "bpe"), ("wordpiece", "wordpiece")])
def test_configs_build_untrained_tokenizers(name, kind):
    factory = instantiate(OmegaConf.load(CONF / f"{name}.yaml"))
    tok = factory()
    assert isinstance(tok, TextTokenizer) and not tok.is_trained and tok.config["kind"] == kind
    assert tok.train(TEXTS, MT_SPECIALS).vocab_size > len(MT_SPECIALS)
