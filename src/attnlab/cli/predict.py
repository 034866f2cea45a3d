"""``attnlab-predict``: classify texts with a fine-tuned BERT checkpoint and the tokenizer saved in it.

    attnlab-predict ckpt_path=outputs/bert_finetune_sst2/<run>/checkpoints/last.ckpt text="a gripping , funny film"
    attnlab-predict ckpt_path=... text="A man plays a guitar." text_b="A person makes music."
    attnlab-predict ckpt_path=... input=texts.tsv          # one text, or text<TAB>text_b, a line

Prints ``label<TAB>probability`` per input, in order. Arguments are ``key=value`` with the value taken literally
(commas and apostrophes need no escaping). Texts are normalised and truncated as the training data was.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import torch

from attnlab.cli.arguments import parse_key_values, positive_int, run_main
from attnlab.inference.restore import restore_run

USAGE = (
    "usage: attnlab-predict ckpt_path=PATH (text=TEXT [text_b=TEXT] | input=FILE) [batch_size=64] [device=cpu|cuda]\n"
    "  input=FILE: one text a line, or text<TAB>text_b for pair tasks; prints label<TAB>probability per input"
)
KEYS = ("ckpt_path", "text", "text_b", "input", "batch_size", "device")


class Prediction(NamedTuple):
    label: str  # the most probable class's name
    probability: float  # its probability


def parse_arguments(argv: list[str]) -> dict[str, Any]:
    """``key=value`` pairs (see ``attnlab.cli.arguments``): ``ckpt_path`` and either ``text`` or ``input``."""
    options = parse_key_values(argv, KEYS, defaults={"batch_size": "64", "device": "cpu"}, required=("ckpt_path",))
    if ("text" in options) == ("input" in options):
        raise ValueError("give either text=TEXT (with text_b=TEXT for pairs) or input=FILE")
    if "text_b" in options and "text" not in options:
        raise ValueError("text_b= goes with text=; a file of pairs is input=FILE with text<TAB>text_b lines")
    options["batch_size"] = positive_int("batch_size", options["batch_size"])
    return options


def read_inputs(path: str | Path) -> tuple[list[str], list[str] | None]:
    """Texts A (and B, when every line has a tab) of an input file; blank lines skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{path} holds no text")
    widths = {len(row) for row in rows}
    if widths == {1}:
        return [row[0] for row in rows], None
    if widths == {2}:
        return [row[0] for row in rows], [row[1] for row in rows]
    raise ValueError(f"{path}: every line must be text or text<TAB>text_b, found lines of {sorted(widths)} fields")


@torch.no_grad()
def predict(
    ckpt_path: str | Path, texts_a: list[str], texts_b: list[str] | None = None, batch_size: int = 64,
    device: str = "cpu",
) -> list[Prediction]:
    """Most probable label and its probability for each text (pair), by the checkpoint's classifier."""
    run = restore_run(ckpt_path)
    if not hasattr(run.datamodule, "label_names") or not hasattr(run.module, "predict_proba"):
        raise ValueError(f"{ckpt_path} is not a classification checkpoint (its model is {type(run.module).__name__})")
    module = run.module.to(device)
    predictions: list[Prediction] = []
    for start in range(0, len(texts_a), batch_size):
        stop = start + batch_size
        batch = run.datamodule.encode(texts_a[start:stop], None if texts_b is None else texts_b[start:stop])
        batch = type(batch)(*(field.to(device) for field in batch))
        probabilities = module.predict_proba(batch).cpu()  # (B, C)
        best = probabilities.max(-1)
        predictions += [
            Prediction(run.datamodule.label_names[index], probability)
            for index, probability in zip(best.indices.tolist(), best.values.tolist())
        ]
    return predictions


def run(argv: list[str]) -> None:
    options = parse_arguments(argv)
    if "input" in options:
        texts_a, texts_b = read_inputs(options["input"])
    else:
        texts_a, texts_b = [options["text"]], [options["text_b"]] if "text_b" in options else None
    for prediction in predict(options["ckpt_path"], texts_a, texts_b, options["batch_size"], options["device"]):
        print(f"{prediction.label}\t{prediction.probability:.6f}")


def main(argv: list[str] | None = None) -> None:
    run_main("attnlab-predict", USAGE, run, argv)


if __name__ == "__main__":
    main()
