"""``attnlab-predict``: classify texts with a fine-tuned BERT run (``attnlab.load``: a checkpoint, or a run dir as
``attnlab-eval`` takes it) and the tokenizer saved in it.

    attnlab-predict ckpt_path=outputs/bert_finetune_sst2/<run> text="a gripping , funny film" text="a dull one"
    attnlab-predict ckpt_path=... text="A man plays a guitar." text_b="A person makes music."
    attnlab-predict ckpt_path=... input=texts.tsv          # one text, or text<TAB>text_b, a line

Prints ``label<TAB>probability`` per input, in order (``text=``, and ``text_b=`` for pair tasks, may repeat).
Arguments are ``key=value`` with the value taken literally (commas and apostrophes need no escaping). Texts are
normalised and truncated as the training data was.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from attnlab.cli.arguments import parse_key_values, positive_int, run_main
from attnlab.inference import LoadedBertClassifier, Prediction, load

USAGE = (
    "usage: attnlab-predict ckpt_path=CKPT|RUN_DIR (text=TEXT [text_b=TEXT] ... | input=FILE) [batch_size=64] "
    "[device=cpu|cuda]\n"
    "  input=FILE: one text a line, or text<TAB>text_b for pair tasks; prints label<TAB>probability per input"
)
KEYS = ("ckpt_path", "text", "text_b", "input", "batch_size", "device")


def parse_arguments(argv: list[str]) -> dict[str, Any]:
    """``key=value`` pairs (see ``attnlab.cli.arguments``): ``ckpt_path`` and either ``text`` (with as many
    ``text_b``, for pairs) or ``input``."""
    options = parse_key_values(argv, KEYS, defaults={"batch_size": "64", "device": "cpu"}, required=("ckpt_path",),
                               repeatable=("text", "text_b"))
    if bool(options["text"]) == ("input" in options):
        raise ValueError("give either text=TEXT (with text_b=TEXT for pairs) or input=FILE")
    if options["text_b"] and len(options["text_b"]) != len(options["text"]):
        if not options["text"]:
            raise ValueError("text_b= goes with text=; a file of pairs is input=FILE with text<TAB>text_b lines")
        raise ValueError(f"give one text_b= per text= for pairs, got {len(options['text'])} text= and "
                         f"{len(options['text_b'])} text_b=")
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


def predict(path: str | Path, texts_a: list[str], texts_b: list[str] | None = None, batch_size: int = 64,
            device: str = "cpu") -> list[Prediction]:
    """The classifier's prediction for each text (pair)."""
    classifier = load(path, device)
    if not isinstance(classifier, LoadedBertClassifier):
        raise ValueError(f"{classifier.path} is not a classification checkpoint: it holds a {classifier.family} model")
    classifier.batch_size = batch_size
    return classifier.predict(texts_a, texts_b)


def run(argv: list[str]) -> None:
    options = parse_arguments(argv)
    if "input" in options:
        texts_a, texts_b = read_inputs(options["input"])
    else:
        texts_a, texts_b = options["text"], options["text_b"] or None
    for prediction in predict(options["ckpt_path"], texts_a, texts_b, options["batch_size"], options["device"]):
        print(f"{prediction.label}\t{prediction.probs[prediction.label]:.6f}")


def main(argv: list[str] | None = None) -> None:
    run_main("attnlab-predict", USAGE, run, argv)


if __name__ == "__main__":
    main()
