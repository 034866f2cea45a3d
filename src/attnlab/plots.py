"""Matplotlib figures shared by every model family (headless: Agg backend)."""
from __future__ import annotations

from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def attention_heatmap(
    weights,
    title: str = "",
    xlabel: str = "keys",
    ylabel: str = "queries",
    xticklabels: Sequence[str] | None = None,
    yticklabels: Sequence[str] | None = None,
) -> Figure:
    """One (queries, keys) weight matrix as an image with a colour bar."""
    matrix = np.asarray(weights, dtype=np.float32)
    height = max(3.0, min(12.0, 0.3 * matrix.shape[0] + 1.5))
    width = max(3.5, min(14.0, 0.3 * matrix.shape[1] + 2.5))
    fig, ax = plt.subplots(figsize=(width, height))
    image = ax.imshow(matrix, cmap="Reds", aspect="auto", vmin=0.0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if xticklabels is not None:
        ax.set_xticks(range(len(xticklabels)), labels=list(xticklabels), rotation=90)
    if yticklabels is not None:
        ax.set_yticks(range(len(yticklabels)), labels=list(yticklabels))
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    return fig


def regression_fit(x_train, y_train, x_test, truth, prediction, title: str = "") -> Figure:
    """Training samples, the true function and the model's prediction over the evaluation grid."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(np.asarray(x_test), np.asarray(truth), label="truth")
    ax.plot(np.asarray(x_test), np.asarray(prediction), label="prediction")
    ax.plot(np.asarray(x_train), np.asarray(y_train), "o", alpha=0.5, label="training samples")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def metric_curves(curves: dict[str, tuple[Sequence[float], Sequence[float]]], metric: str) -> Figure:
    """One line per run: ``curves[label] = (steps, values)``."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, (steps, values) in curves.items():
        ax.plot(steps, values, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    if len(curves) <= 12:
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig
