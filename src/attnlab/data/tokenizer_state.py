"""DataModule mixin: the tokenizer travels inside every checkpoint and comes back from it."""
from __future__ import annotations

from attnlab.data.tokenizers import TextTokenizer

TOKENIZER_KEY = "tokenizer"  # where a DataModule's checkpointed state keeps its tokenizer (JSON)


class TokenizerState:
    """``state_dict`` holds the trained tokenizer as JSON; ``load_state_dict`` adopts a checkpoint's tokenizer
    and, when data was already encoded with another one, has the DataModule re-encode (``_reencode``)."""

    tokenizer: TextTokenizer | None

    def state_dict(self) -> dict:
        return {} if self.tokenizer is None else {TOKENIZER_KEY: self.tokenizer.to_str()}

    def load_state_dict(self, state_dict: dict) -> None:
        if TOKENIZER_KEY not in state_dict:
            return
        if self.tokenizer is not None and self.tokenizer.to_str() == state_dict[TOKENIZER_KEY]:
            return
        self.tokenizer = TextTokenizer.from_str(state_dict[TOKENIZER_KEY])
        self._reencode()  # the DataModule's own: drop data encoded with the old tokenizer, encode it again
