"""``attnlab-predict``: classify texts with a fine-tuned BERT checkpoint and the tokenizer saved in it.

    attnlab-predict ckpt_path=outputs/bert_finetune_sst2/<run>/checkpoints/last.ckpt text="a gripping , funny film"
    attnlab-predict ckpt_path=... text="A man plays a guitar." text_b="A person makes music."
    attnlab-predict ckpt_path=... input=texts.tsv          # one text, or text<TAB>text_b, a line

Prints ``label<TAB>probability`` per input, in order. Arguments are ``key=value`` with the value taken literally
(commas and apostrophes need no escaping). Texts are normalised and truncated as the training data was.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

import torch

from attnlab.cli.restore import restore_run

USAGE = (
    "usage: attnlab-predict ckpt_path=PATH (text=TEXT [text_b=TEXT] | input=FILE) [batch_size=64] [device=cpu|cuda]\n"
    "  input=FILE: one text a line, or text<TAB>text_b for pair tasks; prints label<TAB>probability per input"
)
KEYS = ("ckpt_path", "text", "text_b", "input", "batch_size", "device")


class Prediction(NamedTuple):
    label: str  # the most probable class's name
    probability: float  # its probability


def parse_arguments(argv: list[str]) -> dict[str, str]:
    options = {"batch_size": "64", "device": "cpu"}
    for argument in argv:
        key, sep, value = argument.partition("=")
        if not sep or key not in KEYS:
            raise ValueError(f"unexpected argument {argument!r}; allowed keys: {', '.join(KEYS)}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]  # Hydra-style quoting: text="a, b"
        options[key] = value
    if "ckpt_path" not in options:
        raise ValueError("missing ckpt_path")
    if ("text" in options) == ("input" in options):
        raise ValueError("give either text=TEXT (with text_b=TEXT for pairs) or input=FILE")
    if "text_b" in options and "text" not in options:
        raise ValueError("text_b= goes with text=; a file of pairs is input=FILE with text<TAB>text_b lines")
    if not options["batch_size"].isdigit() or int(options["batch_size"]) < 1:
        raise ValueError(f"batch_size must be a positive int, got {options['batch_size']!r}")
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


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help") for arg in argv):
        print(USAGE)
        return
    try:
        options = parse_arguments(argv)
        if "input" in options:
            texts_a, texts_b = read_inputs(options["input"])
        else:
            texts_a, texts_b = [options["text"]], [options["text_b"]] if "text_b" in options else None
        predictions = predict(options["ckpt_path"], texts_a, texts_b, int(options["batch_size"]), options["device"])
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"attnlab-predict: {error}\n{USAGE}") from error
    for prediction in predictions:
        print(f"{prediction.label}\t{prediction.probability:.6f}")


if __name__ == "__main__":
    main()
