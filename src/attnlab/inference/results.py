"""What a loaded model hands back: attention maps with the tokens they are over, and the named results of each
family. Everything is on the CPU, float32, with the padding cut away, so it prints, plots and serialises as is.

Shape legend: L layers, H heads, Tq query tokens, Tk key tokens, T tokens, D model dim.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from torch import Tensor

# Attention kinds, in the order a result lists them: encoder-decoder (Transformer), Bahdanau's (additive, the
# decoder over the encoder states), BERT's self-attention, Nadaraya-Watson's kernel.
KINDS = ("encoder_self", "decoder_self", "cross", "additive", "self", "kernel")


@dataclass(frozen=True)
class AttentionMap:
    """Every layer's and head's weights of one kind of attention; row ``i`` is query token ``i``'s distribution
    over the key tokens (it sums to 1 over them)."""

    kind: str  # one of KINDS
    query_tokens: list[str]  # Tq tokens, as the tokenizer split them
    key_tokens: list[str]  # Tk tokens
    weights: Tensor  # (L, H, Tq, Tk) float32 on the CPU, real tokens only

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"attention kind={self.kind!r} is not one of {list(KINDS)}")
        expected = (len(self.query_tokens), len(self.key_tokens))
        if self.weights.dim() != 4 or tuple(self.weights.shape[2:]) != expected:
            raise ValueError(
                f"{self.kind} weights of shape {tuple(self.weights.shape)} do not fit (L, H, {expected[0]} query "
                f"tokens, {expected[1]} key tokens)"
            )

    def to_dict(self) -> dict:
        return {"kind": self.kind, "query_tokens": list(self.query_tokens), "key_tokens": list(self.key_tokens),
                "weights": self.weights.tolist()}


@dataclass(frozen=True)
class AttentionResult:
    """The attention maps of one input, by kind, and the output they belong to."""

    maps: dict[str, AttentionMap]  # by kind, in KINDS order
    output: str | None  # the translation / prediction the maps belong to
    truncated: bool  # the input was longer than the model's max_len and was cut

    def plot(self, kind: str | None = None, layer: int | None = None):
        """The heatmap grid (a row per layer, a column per head) of ``kind`` (default: the cross-attention where
        there is one, else the first map), or of one ``layer`` (0-based); a matplotlib Figure."""
        from attnlab.lit import plots  # matplotlib only when a figure is asked for

        if kind is None:
            kind = "cross" if "cross" in self.maps else next(iter(self.maps))
        if kind not in self.maps:
            raise ValueError(f"no {kind!r} attention in this result; it has {list(self.maps)}")
        attention = self.maps[kind]
        weights = attention.weights
        if layer is not None:
            if not -weights.shape[0] <= layer < weights.shape[0]:
                raise ValueError(f"layer={layer} is out of range for {weights.shape[0]} layers (0-based)")
            weights = weights[layer].unsqueeze(0)  # (1, H, Tq, Tk)
        title = f"{kind.replace('_', ' ')} attention" + (f": {self.output}" if self.output else "")
        return plots.attention_grid(
            weights.numpy(), title=title, xlabel="keys", ylabel="queries", xticklabels=attention.key_tokens,
            yticklabels=attention.query_tokens,
        )

    def to_dict(self) -> dict:
        """JSON-serialisable: the maps with their weights as nested lists."""
        return {"maps": {kind: attention.to_dict() for kind, attention in self.maps.items()}, "output": self.output,
                "truncated": self.truncated}


class TokenFeatures(NamedTuple):
    tokens: list[str]  # T tokens, [CLS] A [SEP] (B [SEP])
    hidden: Tensor  # (T, D) each token's contextual vector (last encoder layer)
    pooled: Tensor  # (D,) tanh(W h_[CLS] + b), BERT's summary of the input
    segments: Tensor  # (T,) 0 for [CLS] A [SEP], 1 for B [SEP]
    truncated: bool  # the input was cut to max_len


class TokenProbability(NamedTuple):
    token: str  # a vocabulary entry (word piece)
    prob: float  # its probability at the masked position


class NextSentence(NamedTuple):
    is_next: bool  # the model takes B for the sentence that follows A
    prob: float  # P(B follows A)


class Prediction(NamedTuple):
    label: str  # the most probable class's name
    probs: dict[str, float]  # every class's probability, by name
    truncated: bool  # the input was cut to max_len
