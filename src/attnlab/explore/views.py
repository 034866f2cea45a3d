"""What the explorer shows of each checkpoint for one input: the model's output and its attention maps, as JSON.

A checkpoint that cannot be loaded, or input a model cannot read, becomes an ``error`` entry of that checkpoint,
so one bad checkpoint or sentence never takes the page down.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from attnlab.data.tokenizers import UNK_TOKENS
from attnlab.inference import AttentionResult, LoadedModel, load
from attnlab.inference.bert import MASK

TOP_K = 5  # masked-word candidates shown per [MASK]
DIGITS = 6  # decimals of the weights sent to the page: the JSON stays small, the heatmap exact to the eye

View = tuple[dict[str, Any], AttentionResult]  # (the model's output, the attention maps behind it)


def translation(model, text: str, text_b: str | None) -> View:
    result = model.attention(text)  # the maps of the model's own translation
    return {"translation": result.output}, result


def bert_pretraining(model, text: str, text_b: str | None) -> View:
    output: dict[str, Any] = {}
    if MASK in text:
        candidates = model.fill_mask(text, top_k=TOP_K)
        output["fill_mask"] = [[{"token": c.token, "prob": c.prob} for c in mask] for mask in candidates]
    if text_b is not None:
        is_next, prob = model.next_sentence(text, text_b)
        output["next_sentence"] = {"is_next": is_next, "prob": prob}
    return output, model.attention(text, text_b)


def bert_classifier(model, text: str, text_b: str | None) -> View:
    prediction = model.predict(text, text_b)
    return {"label": prediction.label, "probs": prediction.probs}, model.attention(text, text_b)


def nadaraya_watson(model, text: str, text_b: str | None) -> View:
    try:
        x = [float(number) for number in text.replace(",", " ").split()]
    except ValueError as error:
        raise ValueError(f"a Nadaraya-Watson model reads numbers (such as 0.5 1 2.5), got {text!r}") from error
    result = model.weights(x)
    return {"prediction": result.output}, result


VIEWS: dict[str, Callable[[Any, str, str | None], View]] = {  # a loaded model's family -> what the page shows
    "translation": translation,
    "bert_pretraining": bert_pretraining,
    "bert_classifier": bert_classifier,
    "nadaraya_watson": nadaraya_watson,
}


def notices(model: LoadedModel, result: AttentionResult) -> list[str]:
    """What the reader should know about how the model read the input: cut to fit, unknown words."""
    said = []
    if result.truncated:
        said.append(f"The input is longer than the model's {model.max_len} positions: it was cut to fit.")
    inputs = next(iter(result.maps.values())).key_tokens  # every family's first map has the input as its keys
    unknown = [token for token in inputs if token in UNK_TOKENS]
    if unknown:
        said.append(f"{len(unknown)} of the input's tokens {'is' if len(unknown) == 1 else 'are'} not in the model's "
                    f"vocabulary: read as {unknown[0]}.")
    return said


def rounded(weights: Tensor) -> list:
    return weights.numpy().round(DIGITS).tolist()


class Explorer:
    """The checkpoints of one page, each loaded once (or its load error kept), run on each input."""

    def __init__(self, paths: Sequence[str | Path], device: str = "cpu"):
        self.entries: list[dict[str, Any]] = []
        self.models: list[LoadedModel | None] = []
        for path in paths:
            if not Path(path).exists():
                raise FileNotFoundError(f"checkpoint not found: {path}")
            try:
                model = load(path, device=device)
                if model.family not in VIEWS:
                    raise ValueError(f"{path} is a {model.family} model, which the explorer does not show; it shows "
                                     f"{', '.join(VIEWS)}")
                entry = {"path": str(path), "describe": model.describe()}
            except ValueError as error:
                model, entry = None, {"path": str(path), "error": str(error)}
            self.models.append(model)
            self.entries.append(entry)

    def run(self, text: str, text_b: str | None = None) -> list[dict[str, Any]]:
        """Each checkpoint's output, notices and maps (``{kind: {query_tokens, key_tokens, weights}}``, weights
        as nested ``(L, H, Tq, Tk)`` lists) for ``text`` (and ``text_b``), or its error."""
        if not text.strip():
            raise ValueError("the text is empty: type a sentence")
        text_b = text_b if text_b and text_b.strip() else None
        results = []
        for model, entry in zip(self.models, self.entries):
            if model is None:
                results.append({"error": entry["error"]})
                continue
            try:
                output, result = VIEWS[model.family](model, text, text_b)
            except ValueError as error:
                results.append({"error": str(error)})
                continue
            maps = {kind: {"query_tokens": a.query_tokens, "key_tokens": a.key_tokens, "weights": rounded(a.weights)}
                    for kind, a in result.maps.items()}
            results.append({"output": output, "notices": notices(model, result), "maps": maps})
        return results
