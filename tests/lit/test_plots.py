"""Attention heatmaps read cleanly: with long tokens no title, tick label or axis label overlaps another or a
panel, and nothing is cut off at the figure's edge."""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib.text import Text

from attnlab.lit.plots import attention_grid

SOURCE = "the committee postponed its extraordinarily contentious deliberations until september <eos>".split()
TARGET = "le comité a reporté ses délibérations extraordinairement controversées jusqu'en septembre <eos>".split()


def drawn_texts(figure):
    """(text, window extent) of every visible, non-empty text of the drawn figure."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    texts = [t for t in figure.findobj(Text) if t.get_visible() and t.get_text().strip()]
    return [(t.get_text(), t.get_window_extent(renderer)) for t in texts]


@pytest.mark.parametrize("layers, heads", [(1, 1), (2, 4)])
def test_long_tokens_overlap_nothing_and_stay_inside_the_figure(layers, heads):
    weights = np.random.default_rng(0).dirichlet(np.ones(len(SOURCE)), size=(layers, heads, len(TARGET)))
    figure = attention_grid(weights, title="cross attention: " + " ".join(SOURCE), xlabel="keys", ylabel="queries",
                            xticklabels=SOURCE, yticklabels=TARGET)
    texts = drawn_texts(figure)
    assert {"extraordinarily", "extraordinairement", "queries", "keys"} <= {text for text, _ in texts}
    panels = [axes.get_window_extent() for axes in figure.axes]  # the heatmaps and the colour bar
    edge = figure.bbox.padded(1)
    for index, (text, box) in enumerate(texts):
        inside = all(edge.containsx(x) for x in box.intervalx) and all(edge.containsy(y) for y in box.intervaly)
        assert inside, f"{text!r} is cut off at the figure's edge"
        assert not any(box.overlaps(panel) for panel in panels), f"{text!r} lies over a panel"
        clashes = [other for other, other_box in texts[index + 1:] if box.overlaps(other_box)]
        assert not clashes, f"{text!r} overlaps {clashes}"
