"""Tokenizers in a DataModule's checkpointed state: JSON under fixed keys, and back.

Every DataModule keeps its tokenizers one way: ``{key: tokenizer JSON}`` in ``state_dict`` (``tokenizer``, or
``tokenizer_src``/``tokenizer_tgt``), the same mapping a prepared corpus stores beside its shards.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from attnlab.data.tokenizers import TextTokenizer

TOKENIZER_KEY = "tokenizer"  # where a DataModule's checkpointed state keeps its tokenizer (JSON)


def tokenizer_state(tokenizers: Mapping[str, TextTokenizer]) -> dict[str, str]:
    return {key: tokenizer.to_str() for key, tokenizer in tokenizers.items()}


def restore_tokenizers(
    state: Mapping[str, str], keys: Sequence[str], current: Mapping[str, TextTokenizer] | None = None
) -> dict[str, TextTokenizer]:
    """The tokenizers of ``state`` under ``keys``: ``current``'s objects where their JSON is the same, one object
    for keys with the same JSON (a joint vocabulary)."""
    if missing := sorted(set(keys) - set(state)):
        raise ValueError(f"datamodule state lacks {missing}; it has {sorted(state)}")
    known = {tokenizer.to_str(): tokenizer for tokenizer in (current or {}).values()}
    for key in keys:
        known.setdefault(state[key], TextTokenizer.from_str(state[key]))
    return {key: known[state[key]] for key in keys}


class TokenizerState:
    """DataModule mixin for one tokenizer built in memory: ``state_dict`` holds it; ``load_state_dict`` adopts a
    checkpoint's and, when data was already encoded with another one, has the DataModule re-encode (``_reencode``)."""

    tokenizer: TextTokenizer | None

    def state_dict(self) -> dict:
        return {} if self.tokenizer is None else tokenizer_state({TOKENIZER_KEY: self.tokenizer})

    def load_state_dict(self, state_dict: dict) -> None:
        if TOKENIZER_KEY not in state_dict:
            return
        current = None if self.tokenizer is None else {TOKENIZER_KEY: self.tokenizer}
        restored = restore_tokenizers(state_dict, [TOKENIZER_KEY], current)[TOKENIZER_KEY]
        if restored is not self.tokenizer:
            self.tokenizer = restored
            self._reencode()  # the DataModule's own: drop data encoded with the old tokenizer, encode it again
