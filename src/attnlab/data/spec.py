"""What the data tells the rest of a run: the model's sizes (:class:`TextSpec`) and what a task reads to decode,
score and show its inputs (:class:`TranslationText`, :class:`EncoderText`).

Every DataModule hands out a ``spec()`` and a ``task_text()``; the entry point fills the model config's ``???``
leaves from the first and gives the second to the task, so neither the model nor the task ever asks the
DataModule (or ``trainer.datamodule``) anything.

Shape legend: B batch, S source length, L output length, T tokens of one input.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

from torch import Tensor

from attnlab.data.tokenizers import TextTokenizer

SIZES = ("vocab_size", "src_vocab_size", "tgt_vocab_size", "max_len", "num_classes")  # each at least 1


@dataclass(frozen=True)
class TextSpec:
    """The model sizes only the data knows; None where the data has no such thing (a synthetic regression has
    none at all). Each set field fills the model config's ``???`` leaf of that name (:meth:`as_dict`)."""

    vocab_size: int | None = None  # one vocabulary (BERT)
    src_vocab_size: int | None = None  # a translation's two sides
    tgt_vocab_size: int | None = None
    pad_id: int | None = None  # special ids, of the (target) vocabulary
    bos_id: int | None = None
    eos_id: int | None = None
    max_len: int | None = None  # longest input in tokens, the specials included (BERT's positions)
    num_classes: int | None = None  # labels of a classification

    def __post_init__(self):
        for name, value in self.as_dict().items():
            least = 1 if name in SIZES else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"TextSpec.{name} must be an int >= {least} or None, got {value!r}")
        vocab = self.tgt_vocab_size if self.tgt_vocab_size is not None else self.vocab_size
        for name in ("pad_id", "bos_id", "eos_id"):
            value = getattr(self, name)
            if value is not None and (vocab is None or value >= vocab):
                raise ValueError(f"TextSpec.{name}={value} names no token of a vocabulary of {vocab} tokens")

    def as_dict(self) -> dict[str, int]:
        """The set fields by name: the values of the model config's ``???`` leaves."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class TranslationText:
    """What a translation task reads of its data: to encode sources as training did, turn output ids back into
    text, score against the raw references, and label the tokens of its attention plots."""

    src_tokenizer: TextTokenizer  # labels the source tokens of a plot
    tgt_tokenizer: TextTokenizer  # encodes a plot's reference, labels its tokens
    source_ids: Callable[[Sequence[str]], tuple[Tensor, Tensor]]  # sentences -> src (B, S), src_lens (B,)
    detokenize: Callable[[Tensor], list[str]]  # target ids (B, L) -> text of each row, cut at its first <eos>
    # split -> (sources, references), raw, in corpus order: a batch's ``index`` i is entry i (read once the data
    # is set up, which is after the task is built)
    references: Callable[[str], tuple[list[str], list[str]]]
    examples: tuple[tuple[str, str], ...] = ()  # the corpus's own (source, reference) pairs shown after testing


@dataclass(frozen=True)
class EncoderText:
    """What an encoder task reads of its data to show its attention: a fixed validation input and the tokenizer
    that names its tokens."""

    tokenizer: TextTokenizer
    example: Callable[[], tuple[Tensor, Tensor]]  # -> token ids (T,), segments (T,), once the data is set up
