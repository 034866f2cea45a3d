"""A classifier's test predictions on disk, one example a line in test order (``predictions/<split>.tsv``: the
true label and the predicted one, as class indices), so that its accuracy can be recomputed on any resample of the
examples (``attnlab-report``'s paired bootstrap) and compared run by run."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

PREDICTIONS_DIR = "predictions"  # in the run dir
HEADER = "label\tprediction"


def write_predictions(path: str | Path, labels: Sequence[int], predicted: Sequence[int]) -> Path:
    if len(labels) != len(predicted):
        raise ValueError(f"{len(labels)} labels for {len(predicted)} predictions")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([HEADER, *(f"{a}\t{b}" for a, b in zip(labels, predicted))]) + "\n")
    return path


def read_predictions(path: str | Path) -> tuple[list[str], list[str]]:
    """``(labels, predictions)`` as written."""
    header, *lines = Path(path).read_text().splitlines()
    if header != HEADER:
        raise ValueError(f"{path}: first line {header!r}, expected {HEADER!r}")
    pairs = [line.split("\t") for line in lines]
    return [pair[0] for pair in pairs], [pair[1] for pair in pairs]
