"""Text tokenizers: one thin wrapper over Hugging Face ``tokenizers`` and three builders.

The builders (``word``, ``bpe``, ``wordpiece``) are what ``conf/tokenizer/*.yaml`` point at with ``_partial_: true``;
calling one gives an *untrained* :class:`TextTokenizer`. The caller trains it and decides the special tokens, because
they belong to the task (translation: ``<unk> <pad> <bos> <eos>``; BERT: ``[PAD] [UNK] [CLS] [SEP] [MASK]``).
Specials take ids ``0..len(specials)-1`` in the order given, so the ids are stable across corpora.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

TOKENIZER_KEY = "tokenizer"  # where a DataModule's checkpointed state keeps its one tokenizer (JSON)
UNK_TOKENS = ("<unk>", "[UNK]")  # the special that unknown pieces map to, whichever the task uses
_ENCODE_CHUNK = 10_000  # texts per batch call: bounds the Encoding objects alive at once (and is faster here)
_UNBOUNDED_VOCAB = 2**31 - 1  # WordLevelTrainer caps at 30,000 by default; d2l's word vocab is bounded by min_freq only

# Builds (tokenizer, trainer) for a given unk token and special list: the hyperparameters are closed over.
TokenizerFactory = Callable[[str, list[str]], "tuple[Tokenizer, trainers.Trainer]"]


class TextTokenizer:
    """Encodes text to ids and back; serialises to the Hugging Face JSON format (``to_str``/``save``).

    ``config`` records the builder and its hyperparameters (used e.g. as part of data cache keys); a tokenizer
    rebuilt from JSON has ``config == {"kind": "json"}`` and can no longer be retrained.
    """

    def __init__(
        self, config: dict[str, Any], factory: TokenizerFactory | None = None, tokenizer: Tokenizer | None = None
    ):
        self.config = dict(config)
        self._factory = factory
        self._tokenizer = tokenizer

    # ---- training -------------------------------------------------------------------------------------------
    def train(self, texts: Iterable[str], specials: Sequence[str]) -> TextTokenizer:
        """Learn the vocabulary from ``texts``; ``specials`` get ids 0..k-1. Returns ``self``."""
        if self._factory is None:
            raise ValueError("this tokenizer was loaded from JSON and cannot be retrained; build a new one instead")
        specials = list(specials)
        if len(set(specials)) != len(specials):
            raise ValueError(f"specials must be unique, got {specials}")
        unks = [s for s in specials if s in UNK_TOKENS]
        if len(unks) != 1:
            raise ValueError(f"specials must hold exactly one unknown token out of {list(UNK_TOKENS)}, got {specials}")
        tokenizer, trainer = self._factory(unks[0], specials)
        tokenizer.train_from_iterator(texts, trainer=trainer)
        self._tokenizer = tokenizer
        ids = [tokenizer.token_to_id(s) for s in specials]
        if ids != list(range(len(specials))):  # guards the "stable special ids" contract against library changes
            raise ValueError(f"specials {specials} got ids {ids}, expected 0..{len(specials) - 1}")
        return self

    @property
    def is_trained(self) -> bool:
        return self._tokenizer is not None

    def _trained(self) -> Tokenizer:
        if self._tokenizer is None:
            raise ValueError(f"tokenizer {self.config} is not trained yet: call train(texts, specials) first")
        return self._tokenizer

    # ---- encoding -------------------------------------------------------------------------------------------
    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids of each text, no special tokens added (the task adds its own <bos>/<eos> or [CLS]/[SEP])."""
        tokenizer, texts = self._trained(), list(texts)
        return [
            encoding.ids
            for start in range(0, len(texts), _ENCODE_CHUNK)
            for encoding in tokenizer.encode_batch_fast(texts[start : start + _ENCODE_CHUNK], add_special_tokens=False)
        ]

    def decode_batch(self, ids_lists: Sequence[Sequence[int]]) -> list[str]:
        """Texts of each id list, special tokens skipped."""
        return self._trained().decode_batch([list(map(int, ids)) for ids in ids_lists], skip_special_tokens=True)

    def token_to_id(self, token: str) -> int:
        index = self._trained().token_to_id(token)
        if index is None:
            raise ValueError(f"token {token!r} is not in the vocabulary (specials: {self.specials})")
        return index

    def id_to_token(self, index: int) -> str:
        token = self._trained().id_to_token(index)
        if token is None:
            raise ValueError(f"id {index} is out of range for a vocabulary of size {self.vocab_size}")
        return token

    @property
    def vocab_size(self) -> int:
        return self._trained().get_vocab_size(with_added_tokens=True)

    @property
    def specials(self) -> list[str]:
        """Special tokens in id order."""
        added = self._trained().get_added_tokens_decoder()
        return [added[i].content for i in sorted(added) if added[i].special]

    @property
    def unk_token(self) -> str:
        return next(s for s in self.specials if s in UNK_TOKENS)

    # ---- serialisation --------------------------------------------------------------------------------------
    def to_str(self) -> str:
        """Hugging Face tokenizer JSON (also loadable with ``tokenizers.Tokenizer.from_str``)."""
        return self._trained().to_str()

    @classmethod
    def from_str(cls, json_str: str) -> TextTokenizer:
        return cls({"kind": "json"}, tokenizer=Tokenizer.from_str(json_str))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the JSON atomically (a crash never leaves a half-written file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(self.to_str())
        os.chmod(tmp, 0o644)  # mkstemp makes it private
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> TextTokenizer:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer file at {path}")
        return cls.from_str(path.read_text(encoding="utf-8"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TextTokenizer):
            return NotImplemented
        if not (self.is_trained and other.is_trained):
            return self is other
        return self.to_str() == other.to_str()

    __hash__ = None  # mutable (train), so unhashable

    def __repr__(self) -> str:
        size = self.vocab_size if self.is_trained else "untrained"
        return f"TextTokenizer({self.config}, vocab_size={size})"


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def word(min_freq: int = 2, lowercase: bool = False) -> TextTokenizer:
    """d2l's word vocabulary: whitespace-separated tokens kept when seen at least ``min_freq`` times."""
    _check_positive("min_freq", min_freq)

    def factory(unk: str, specials: list[str]):
        tokenizer = Tokenizer(models.WordLevel(vocab={}, unk_token=unk))
        if lowercase:
            tokenizer.normalizer = normalizers.Lowercase()
        tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        # no decoder: Tokenizer.decode joins word tokens with single spaces
        trainer = trainers.WordLevelTrainer(
            vocab_size=_UNBOUNDED_VOCAB, min_frequency=min_freq, special_tokens=specials, show_progress=False
        )
        return tokenizer, trainer

    return TextTokenizer({"kind": "word", "min_freq": min_freq, "lowercase": lowercase}, factory)


def bpe(vocab_size: int = 10000, split_punctuation: bool = True) -> TextTokenizer:
    """Byte-pair encoding (Sennrich et al., 2016) over SentencePiece-style ``▁word`` pieces.

    Metaspace keeps pieces readable in attention heatmaps (accents stay characters) and its decoder restores
    single-spaced text exactly; characters never seen in training map to the unk token. ``split_punctuation``
    makes every punctuation character a piece of its own (``"date."`` -> ``▁date .``), so raw text needs no
    pre-tokenisation and no merge is spent on a word's punctuated forms; the ``▁`` marks still decode it exactly.
    """
    _check_positive("vocab_size", vocab_size)

    def factory(unk: str, specials: list[str]):
        tokenizer = Tokenizer(models.BPE(unk_token=unk))
        metaspace = pre_tokenizers.Metaspace()
        tokenizer.pre_tokenizer = (
            pre_tokenizers.Sequence([metaspace, pre_tokenizers.Punctuation()]) if split_punctuation else metaspace
        )
        tokenizer.decoder = decoders.Metaspace()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
        return tokenizer, trainer

    return TextTokenizer({"kind": "bpe", "vocab_size": vocab_size, "split_punctuation": split_punctuation}, factory)


def wordpiece(vocab_size: int = 10000, lowercase: bool = True, strip_accents: bool = False) -> TextTokenizer:
    """BERT's WordPiece (Devlin et al., 2019): BERT normaliser and pre-tokenizer, ``##`` continuation pieces.

    Accents are kept unless ``strip_accents`` (the BERT normaliser would otherwise strip them whenever it
    lowercases, turning French "été" into "ete" on both sides of a BLEU score).
    """
    _check_positive("vocab_size", vocab_size)

    def factory(unk: str, specials: list[str]):
        tokenizer = Tokenizer(models.WordPiece(unk_token=unk))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=strip_accents)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
        return tokenizer, trainer

    config = {"kind": "wordpiece", "vocab_size": vocab_size, "lowercase": lowercase, "strip_accents": strip_accents}
    return TextTokenizer(config, factory)
