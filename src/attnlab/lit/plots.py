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
    """Every head of every layer: ``weights`` (layers, heads, queries, keys) as a grid, one row per layer."""
    grid = np.asarray(weights, dtype=np.float32)
    if grid.ndim != 4:
        raise ValueError(f"expected weights of shape (layers, heads, queries, keys), got {grid.shape}")
    layers, heads, num_queries, num_keys = grid.shape
    cell = min(3.5, max(1.8, 0.22 * max(num_queries, num_keys) + 0.8))
    fig, axes = plt.subplots(layers, heads, figsize=(cell * heads + 1.0, cell * layers + 0.6), squeeze=False)
    for layer in range(layers):
        for head in range(heads):
            ax = axes[layer, head]
            image = ax.imshow(grid[layer, head], cmap="Reds", aspect="auto", vmin=0.0, vmax=1.0)
            if layers * heads > 1:
                ax.set_title(f"layer {layer + 1}, head {head + 1}", fontsize="small")
            ax.set_xticks(range(num_keys), labels=list(xticklabels) if xticklabels is not None else [], rotation=90,
                          fontsize="x-small")
            ax.set_yticks(range(num_queries), labels=list(yticklabels) if yticklabels is not None else [],
                          fontsize="x-small")
            if layer == layers - 1:
                ax.set_xlabel(xlabel, fontsize="small")
            if head == 0:
                ax.set_ylabel(ylabel, fontsize="small")
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8)
    fig.suptitle(title)
    return fig
