"""Matplotlib figures shared by every model family (headless: Agg backend)."""
from __future__ import annotations

from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def attention_heatmap(weights, title: str = "", xlabel: str = "keys", ylabel: str = "queries") -> Figure:
    """One (queries, keys) weight matrix as an image with a colour bar."""
    return attention_grid(np.asarray(weights, dtype=np.float32)[None, None], title, xlabel, ylabel)


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


def variant_curves(panels: dict[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]], metric: str) -> Figure:
    """One panel per x axis (``panels[xlabel][label] = (x, mean, std)``): each variant's mean over seeds as a line,
    a band of one standard deviation around it, a marker with an error bar where it has a single point."""
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    for ax, (xlabel, curves) in zip(axes[0], panels.items()):
        for index, (label, (x, mean, std)) in enumerate(curves.items()):
            color = f"C{index % 10}"
            if len(x) == 1:
                ax.errorbar(x, mean, yerr=std, fmt="o", color=color, capsize=3, label=label)
            else:
                ax.plot(x, mean, color=color, label=label)
                ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(metric)
    if sum(len(curves) for curves in panels.values()) and len(next(iter(panels.values()))) <= 12:
        axes[0][0].legend(fontsize="small")
    fig.suptitle(f"{metric}: mean over seeds, band = one standard deviation")
    fig.tight_layout()
    return fig


def attention_grid(
    weights,
    title: str = "",
    xlabel: str = "keys",
    ylabel: str = "queries",
    xticklabels: Sequence[str] | None = None,
    yticklabels: Sequence[str] | None = None,
) -> Figure:
    """Every head of every layer: ``weights`` (layers, heads, queries, keys) as a grid, one row per layer.

    The panels share their tokens, so only the left column names the queries and only the bottom row the keys;
    the figure grows by the longest token, and constrained layout keeps titles, labels and panels apart."""
    grid = np.asarray(weights, dtype=np.float32)
    if grid.ndim != 4:
        raise ValueError(f"expected weights of shape (layers, heads, queries, keys), got {grid.shape}")
    layers, heads, num_queries, num_keys = grid.shape
    cell = min(3.5, max(1.8, 0.22 * max(num_queries, num_keys) + 0.8))
    longest = [max(map(len, labels), default=0) if labels is not None else 0 for labels in (xticklabels, yticklabels)]
    margin_x, margin_y = (0.065 * chars + 0.5 for chars in longest)  # inches of tick labels at x-small size
    fig, axes = plt.subplots(layers, heads, figsize=(cell * heads + margin_y + 1.2, cell * layers + margin_x + 0.7),
                             squeeze=False, sharex=True, sharey=True, layout="constrained")
    for layer in range(layers):
        for head in range(heads):
            ax = axes[layer, head]
            image = ax.imshow(grid[layer, head], cmap="Reds", aspect="auto", vmin=0.0, vmax=1.0)
            if layers * heads > 1:
                ax.set_title(f"layer {layer + 1}, head {head + 1}", fontsize="small")
            _tick_labels(ax.xaxis, num_keys, xticklabels, rotation=90)
            _tick_labels(ax.yaxis, num_queries, yticklabels)
            ax.set_xlabel(xlabel, fontsize="small")
            ax.set_ylabel(ylabel, fontsize="small")
            ax.label_outer()  # inner panels: no tick labels, no axis labels
    fig.colorbar(image, ax=axes, shrink=0.8)
    fig.suptitle(title, wrap=True)
    return fig


def _tick_labels(axis, count: int, labels: Sequence[str] | None, rotation: float = 0) -> None:
    """One tick per token, named; without names no ticks at all (a bare row of marks says nothing)."""
    if labels is None:
        axis.set_ticks([])
        return
    axis.set_ticks(range(count), labels=list(labels), fontsize="x-small", rotation=rotation)
