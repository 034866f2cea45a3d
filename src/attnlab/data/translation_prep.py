"""Preparing a translation corpus (d2l 10.5), apart from any Lightning hook.

Pipeline: read pairs -> optional d2l preprocessing -> seeded train/val/test split by source sentence -> train the
tokenizer(s) on the training split only -> encode every split with the batch API, part by part -> apply the length
policy -> write each part as token shards (:mod:`attnlab.data.shards`). :class:`PreparedPairs` reads the splits
back: ids, bucketing lengths and each split's texts (the raw references of evaluation, read on demand).
"""
from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from attnlab.data.corpora import SPLITS, Corpus, Pairs, source_groups, split_indices
from attnlab.data.corpus_store import Tokenizers
from attnlab.data.pairs import PairDataset, pair_lengths
from attnlab.data.ragged import RaggedIds
from attnlab.data.shards import Shards, ShardWriter
from attnlab.data.tokenizers import TextTokenizer

log = logging.getLogger(__name__)

SPECIALS = ["<unk>", "<pad>", "<bos>", "<eos>"]  # ids 0..3 on both sides, as in d2l's Vocab
LENGTH_POLICIES = ("truncate", "filter")
_SPACE_BEFORE = re.compile(r"(?<=[^ \n])([,.!?])")  # punctuation glued to the previous character of its line
TOKENIZER_KEYS = ("tokenizer_src", "tokenizer_tgt")  # in checkpoints and the shards' meta (joint: one object twice)
PART_PAIRS = 200_000  # pairs encoded and written at a time: bounds the memory of preparing a large corpus
UNK_WARNING_SHARE = 0.05  # a held-out side with more <unk> tokens than this gets a warning naming the tokenizer


def preprocess(text: str) -> str:
    """d2l's ``preprocess``: lowercase, non-breaking spaces to spaces, a space before , . ! ? glued to a word."""
    text = text.replace("\u202f", " ").replace("\xa0", " ").lower()
    return _SPACE_BEFORE.sub(r" \1", text)


def preprocess_lines(texts: Sequence[str]) -> list[str]:
    """``preprocess`` of each line, done on the joined text: several times faster on a 167k-line corpus."""
    if not texts or any("\n" in text for text in texts):  # joined form needs one line per text
        return [preprocess(text) for text in texts]
    return preprocess("\n".join(texts)).split("\n")


def check_positive(**values: int | None) -> None:
    """Raise naming the first value that is neither a positive int nor None."""
    for name, value in values.items():
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a positive int or None, got {value!r}")


class PreparedPairs:
    """Encoded splits read from their shards: ``datasets[split]`` serves ids, ``texts(split)`` the sentences."""

    def __init__(self, shards: Shards):
        self.shards, self._texts = shards, {}
        self.datasets = {name: PairDataset(shards.ragged(name, "src"), shards.ragged(name, "tgt"),
                                           shards.array(name, "length")) for name in SPLITS}

    def texts(self, split: str) -> Pairs:
        """``(sources, targets)`` of the rows of ``datasets[split]``, as read and normalised (read on first use)."""
        if split not in self._texts:
            self._texts[split] = (self.shards.texts(split, "src_text"), self.shards.texts(split, "tgt_text"))
        return self._texts[split]


@dataclass(frozen=True)
class PairPreparation:
    """How the pairs of ``corpus`` become encoded splits; the DataModule's options of the same name."""

    corpus: Corpus  # where the pairs come from (FraEngCorpus, ParallelCorpus)
    build_tokenizer: Callable[[], TextTokenizer]  # an untrained tokenizer per call
    joint_vocab: bool = False  # one tokenizer trained on both sides, or one per side
    preprocess: bool = True  # d2l's ``preprocess`` of every sentence
    val_fraction: float = 0.05  # shares carved out (by split_seed) where the corpus has no such split
    test_fraction: float = 0.05
    num_train: int | None = None  # keep the first n pairs of a split (file order); None keeps all
    num_val: int | None = None
    num_test: int | None = None
    max_len: int | None = None  # longest sequence in tokens, counting the one <eos>/<bos>; None: no limit
    length_policy: str = "truncate"  # "truncate" longer pairs to max_len, or "filter" them out
    split_seed: int = 0  # the carved split; apart from the batch seed, so runs of several seeds share val/test

    def __post_init__(self):
        for name, fraction in (("val_fraction", self.val_fraction), ("test_fraction", self.test_fraction)):
            if not 0.0 <= fraction < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {fraction}")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                f"val_fraction + test_fraction must be < 1, got {self.val_fraction} + {self.test_fraction}"
            )
        check_positive(num_train=self.num_train, num_val=self.num_val, num_test=self.num_test)
        if self.max_len is not None and (not isinstance(self.max_len, int) or self.max_len < 2):
            raise ValueError(f"max_len must be an int >= 2 (one token plus <eos>) or None, got {self.max_len!r}")
        if self.length_policy not in LENGTH_POLICIES:
            raise ValueError(f"length_policy must be one of {LENGTH_POLICIES}, got {self.length_policy!r}")

    def config(self) -> dict[str, Any]:
        """What of this preparation changes the shards (the store key, with the files and the tokenizer)."""
        options = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("corpus", "build_tokenizer")}
        return {"corpus": self.corpus.identity(), **options}

    def write(self, writer: ShardWriter, tokenizers: Tokenizers | None = None) -> Tokenizers:
        """Read, split, fit tokenizers on the training split only (unless given), encode all splits into
        ``writer``; the tokenizers used, by :data:`TOKENIZER_KEYS`."""
        clock = [time.perf_counter()]
        texts = self.texts_by_split()
        clock.append(time.perf_counter())
        used = self.train_tokenizers(*texts["train"]) if tokenizers is None else tokenizers
        src_tok, tgt_tok = (used[key] for key in TOKENIZER_KEYS)
        clock.append(time.perf_counter())
        counts = {name: TokenCounts() for name in SPLITS}
        for name in SPLITS:
            for start in range(0, max(len(texts[name][0]), 1), PART_PAIRS):  # an empty split: one empty part
                sources, targets = (side[start : start + PART_PAIRS] for side in texts[name])
                part = self._encode_part(src_tok, tgt_tok, sources, targets)
                counts[name].add(part)
                writer.add(name, part)
        clock.append(time.perf_counter())
        phases = ("read+split+preprocess", "tokenizer training", "encoding")
        log.info("%s prep phases: %s", self.corpus.name,
                 ", ".join(f"{name} {b - a:.2f}s" for name, a, b in zip(phases, clock, clock[1:])))
        report_tokens(self.build_tokenizer().config if tokenizers is None else "restored", counts)
        return used

    def _encode_part(self, src_tok: TextTokenizer, tgt_tok: TextTokenizer, sources: list[str],
                     targets: list[str]) -> dict[str, Any]:
        """The shard columns of some pairs: ids of both sides, bucketing lengths, texts (kept pairs only)."""
        src_rows, tgt_rows = _encode_unique(src_tok, sources), _encode_unique(tgt_tok, targets)
        keep = self._apply_length_policy(src_rows, tgt_rows)
        if keep is not None:
            src_rows, tgt_rows = [src_rows[i] for i in keep], [tgt_rows[i] for i in keep]
            sources, targets = [sources[i] for i in keep], [targets[i] for i in keep]
        src, tgt = RaggedIds.from_lists(src_rows), RaggedIds.from_lists(tgt_rows)
        return {"src": src, "tgt": tgt, "length": pair_lengths(src, tgt), "src_text": sources, "tgt_text": targets}

    def texts_by_split(self) -> dict[str, Pairs]:
        """Each split's pairs, normalised (``preprocess``), in corpus order. Held-out splits the corpus lacks are
        carved out of train by source sentence: all pairs of one source fall in one split, so no held-out source
        is a training source. The log states how many held-out pairs have a source that is also a training source
        (0 for carved splits; corpora that ship their own val/test files may share sentences with train)."""
        raw = self.corpus.read_splits()
        if self.preprocess:
            raw = {name: None if pairs is None else (preprocess_lines(pairs[0]), preprocess_lines(pairs[1]))
                   for name, pairs in raw.items()}
        carve = {name: frac for name, frac in (("val", self.val_fraction), ("test", self.test_fraction))
                 if raw.get(name) is None}
        sources, targets = raw["train"]
        texts = {name: raw[name] for name in SPLITS[1:] if name not in carve}
        for name, index in split_indices(len(sources), carve, self.split_seed, groups=source_groups(sources)).items():
            texts[name] = ([sources[i] for i in index], [targets[i] for i in index])
        limits = {"train": self.num_train, "val": self.num_val, "test": self.num_test}
        texts = {name: (s[: limits.get(name)], t[: limits.get(name)]) for name, (s, t) in texts.items()}
        if not texts["train"][0]:
            raise ValueError(f"corpus {self.corpus.name!r}: the training split is empty")
        seen = set(texts["train"][0])
        log.info("%s: held-out pairs whose source is also a training source: %s", self.corpus.name, ", ".join(
            f"{name} {sum(source in seen for source in texts[name][0])} of {len(texts[name][0])} "
            f"({'carved' if name in carve else 'own file'})" for name in SPLITS[1:]))
        return texts

    def train_tokenizers(self, train_src: list[str], train_tgt: list[str]) -> Tokenizers:
        if self.joint_vocab:
            joint = self.build_tokenizer().train(itertools.chain(train_src, train_tgt), SPECIALS)
            return dict.fromkeys(TOKENIZER_KEYS, joint)
        sides = (train_src, train_tgt)
        return {key: self.build_tokenizer().train(texts, SPECIALS) for key, texts in zip(TOKENIZER_KEYS, sides)}

    def sentence_rows(self, tokenizer: TextTokenizer, texts: Sequence[str]) -> list[list[int]]:
        """Ids of new sentences (either side), preprocessed as the training data was; not truncated."""
        return tokenizer.encode_batch(preprocess_lines(texts) if self.preprocess else list(texts))

    def source_rows(self, tokenizer: TextTokenizer, texts: Sequence[str]) -> list[list[int]]:
        """Ids of new source sentences, preprocessed and truncated as the training data was."""
        rows = self.sentence_rows(tokenizer, texts)
        return rows if self.max_len is None else [row[: self.max_len - 1] for row in rows]

    def _apply_length_policy(self, src_rows: list[list[int]], tgt_rows: list[list[int]]) -> list[int] | None:
        """Truncate rows in place to ``max_len - 1`` tokens, or return the indices of pairs that fit."""
        if self.max_len is None:
            return None
        limit = self.max_len - 1  # room for the <eos> (source, target output) or <bos> (target input)
        if self.length_policy == "filter":
            return [i for i, (x, y) in enumerate(zip(src_rows, tgt_rows)) if len(x) <= limit and len(y) <= limit]
        for rows in (src_rows, tgt_rows):
            rows[:] = [row[:limit] for row in rows]
        return None


@dataclass
class TokenCounts:
    """Sentences, whitespace words, tokens and ``<unk>`` tokens of one split, per side (source, target)."""

    sentences: int = 0
    words: list[int] = field(default_factory=lambda: [0, 0])
    tokens: list[int] = field(default_factory=lambda: [0, 0])
    unks: list[int] = field(default_factory=lambda: [0, 0])

    def add(self, part: dict[str, Any]) -> None:
        """Count an encoded part (the columns of ``PairPreparation._encode_part``)."""
        self.sentences += len(part["src_text"])
        for side, (ids, texts) in enumerate(((part["src"], part["src_text"]), (part["tgt"], part["tgt_text"]))):
            self.words[side] += sum(len(text.split()) for text in texts)
            self.tokens[side] += len(ids.ids)
            self.unks[side] += int((ids.ids == SPECIALS.index("<unk>")).sum())

    def unk_share(self, side: int) -> float:
        return self.unks[side] / max(self.tokens[side], 1)


def report_tokens(tokenizer: Any, counts: dict[str, TokenCounts]) -> None:
    """Log what the tokenizer made of each split (tokens per word, ``<unk>`` share), and warn where a held-out
    side is more than :data:`UNK_WARNING_SHARE` ``<unk>``: a vocabulary that does not fit the text."""
    log.info("tokenizer %s: %s", tokenizer, "; ".join(
        f"{name} {c.sentences} pairs, tokens/word src {c.tokens[0] / max(c.words[0], 1):.2f} "
        f"tgt {c.tokens[1] / max(c.words[1], 1):.2f}, <unk> src {c.unk_share(0):.2%} tgt {c.unk_share(1):.2%}"
        for name, c in counts.items()))
    for name in SPLITS[1:]:
        for side, label in enumerate(("source", "target")):
            if counts[name].unk_share(side) > UNK_WARNING_SHARE:
                log.warning(
                    "%.1f%% of the %s %s tokens are <unk> under tokenizer %s (more than %.0f%%): the vocabulary does "
                    "not fit this text; tokenizer=bpe (subwords, punctuation split) has almost none",
                    100 * counts[name].unk_share(side), name, label, tokenizer, 100 * UNK_WARNING_SHARE)


def _encode_unique(tokenizer: TextTokenizer, texts: list[str]) -> list[list[int]]:
    """Encode each distinct text once (fra-eng repeats 30% of its English side); duplicates share a row."""
    unique = list(dict.fromkeys(texts))
    rows = dict(zip(unique, tokenizer.encode_batch(unique)))
    return [rows[text] for text in texts]
