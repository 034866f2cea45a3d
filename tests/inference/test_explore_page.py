"""``attnlab-explore`` in a real browser (Debian's headless Chromium driven by Playwright): type a sentence, wait
for the heatmaps, check the numbers they show against ``attnlab.load(...).attention(...)``, switch map, layer and
head, hover a cell; the same for an exported file opened from disk. Any request off 127.0.0.1 fails the test.

``ATTNLAB_SCREENSHOTS=docs`` saves the pages as ``docs/explorer-*.png``.
"""
from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from test_explore_server import serve

import attnlab
from attnlab.cli.explore import main as explore_main

BROWSER = Path(os.environ.get("ATTNLAB_CHROMIUM", "/usr/bin/chromium-headless-shell"))
ENABLE = ("apt-get install -y --no-install-recommends chromium-headless-shell, and pip install 'attnlab[test]' "
          "(.ci/run does both)")
if not os.environ.get("CI"):  # in CI a missing browser is a failure, not a skip
    pytest.importorskip("playwright.sync_api", reason=f"Playwright is not installed: {ENABLE}")
    if not BROWSER.is_file():
        pytest.skip(f"no browser at {BROWSER}: {ENABLE}", allow_module_level=True)
from playwright.sync_api import Page, sync_playwright  # noqa: E402

SENTENCES = ["i see the red cat", "we like a big dog"]
SCREENSHOTS = os.environ.get("ATTNLAB_SCREENSHOTS")


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(BROWSER))
        yield launched
        launched.close()


@pytest.fixture
def page(browser) -> Iterator[Page]:
    """A page whose requests may go to 127.0.0.1 or disk only; any other is blocked and fails the test."""
    offsite: list[str] = []

    def guard(route):
        url = urllib.parse.urlsplit(route.request.url)
        if url.scheme in ("file", "data", "blob") or url.hostname == "127.0.0.1":
            route.continue_()
        else:
            offsite.append(route.request.url)
            route.abort()

    opened = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.route("**/*", guard)
    yield opened
    opened.close()
    assert not offsite, f"the page asked for {offsite}"
    assert not errors, f"the page's script failed: {errors}"


def drawn(page: Page, panel: int, times: int = 1) -> None:
    page.wait_for_selector(f"#panel-{panel} .plot[data-drawn='{times}']")


def shown(page: Page, panel: int) -> dict:
    """The heatmaps of a panel as plotly holds them: each head's z, and the axes' tick labels."""
    return page.evaluate("""i => {
        const plot = document.querySelector(`#panel-${i} .plot`);
        return {z: plot.data.map(t => t.z), x: plot.layout.xaxis.ticktext, y: plot.layout.yaxis.ticktext};
    }""", panel)


def choose(page: Page, panel: int, control: str, value: str) -> None:
    before = int(page.get_attribute(f"#panel-{panel} .plot", "data-drawn"))
    page.select_option(f"#panel-{panel} select.{control}", value)
    drawn(page, panel, before + 1)


def hover(page: Page, panel: int, query: int, key: int) -> str:
    """Move the mouse over cell (query, key) of the panel's first heatmap; the hover label's text."""
    x, y = page.evaluate("""([i, q, k]) => {
        const plot = document.querySelector(`#panel-${i} .plot`);
        const xa = plot._fullLayout.xaxis, ya = plot._fullLayout.yaxis, box = plot.getBoundingClientRect();
        return [box.left + xa._offset + xa.l2p(k), box.top + ya._offset + ya.l2p(q)];
    }""", [panel, query, key])
    page.mouse.move(x, y)
    label = page.wait_for_selector(f"#panel-{panel} .hovertext")
    return label.text_content()


def escaped(tokens: list[str]) -> list[str]:
    """Tokens as plotly's labels hold them: ``<eos>`` is ``&lt;eos&gt;`` (labels are read as HTML)."""
    return [token.replace("<", "&lt;").replace(">", "&gt;") for token in tokens]


def close(shown_z, expected: torch.Tensor) -> None:
    torch.testing.assert_close(torch.tensor(shown_z), expected, atol=1e-6, rtol=0)


def screenshot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / f"explorer-{name}.png"), full_page=True)


def test_two_translation_checkpoints_side_by_side(page, transformer_run, bahdanau_run):
    transformer, bahdanau = attnlab.load(transformer_run), attnlab.load(bahdanau_run)
    with serve([transformer_run, bahdanau_run]) as served:
        page.goto(served.url)
        page.click("#run")  # nothing typed: an answer on the page, and the page goes on
        page.wait_for_selector("#message .error")
        assert page.text_content("#message") == "the text is empty: type a sentence"
        page.fill("#text", SENTENCES[0])
        page.click("#run")
        drawn(page, 0)
        drawn(page, 1)
        assert page.text_content("#message") == ""

        expected = transformer.attention(SENTENCES[0])
        assert page.text_content("#panel-0 .output") == f"→ {expected.output}"
        cross = expected.maps["cross"]
        heatmaps = shown(page, 0)  # the cross-attention first: layer 1, every head
        close(heatmaps["z"], cross.weights[0])
        assert heatmaps["x"] == escaped(cross.key_tokens) and heatmaps["y"] == escaped(cross.query_tokens)
        choose(page, 0, "layer", "1")
        choose(page, 0, "head", "1")
        close(shown(page, 0)["z"], cross.weights[1, 1][None])
        label = hover(page, 0, 2, 1)
        assert label == f"query: {cross.query_tokens[2]}key: {cross.key_tokens[1]}weight: {cross.weights[1, 1, 2, 1]:.4f}"
        screenshot(page, "translation")
        choose(page, 0, "kind", "encoder_self")  # layer 2, head 2 stay chosen
        close(shown(page, 0)["z"], expected.maps["encoder_self"].weights[1, 1][None])

        additive = bahdanau.attention(SENTENCES[0]).maps["additive"]
        assert page.eval_on_selector_all("#panel-1 select.kind option", "os => os.map(o => o.value)") == ["additive"]
        close(shown(page, 1)["z"], additive.weights[0])


def test_bert_masked_words_and_a_classifier(page, bert_run, classifier_run):
    text = "the cat sat on the [MASK] ."
    with serve([bert_run, classifier_run]) as served:
        page.goto(served.url)
        page.fill("#text", text)
        page.click("#run")
        drawn(page, 0)
        drawn(page, 1)
        (candidates,) = attnlab.load(bert_run).fill_mask(text)
        assert page.text_content("#panel-0 .output").startswith(f"[MASK] 1: {candidates[0].token} (")
        prediction = attnlab.load(classifier_run).predict(text)
        assert page.text_content("#panel-1 .output").startswith(f"label: {prediction.label}")
        close(shown(page, 0)["z"], attnlab.load(bert_run).attention(text).maps["self"].weights[0])
        choose(page, 1, "layer", "1")
        close(shown(page, 1)["z"], attnlab.load(classifier_run).attention(text).maps["self"].weights[1])
        screenshot(page, "bert")


def test_the_exported_file_opens_from_disk(page, transformer_run, bahdanau_run, tmp_path):
    (tmp_path / "sentences.txt").write_text("\n".join(SENTENCES) + "\n")
    exported = tmp_path / "page.html"
    explore_main([f"ckpt_path={transformer_run}", f"ckpt_path={bahdanau_run}", f"export={exported}",
                  f"input={tmp_path / 'sentences.txt'}"])
    page.goto(exported.as_uri())
    drawn(page, 0)
    assert page.is_hidden("#ask")
    transformer = attnlab.load(transformer_run)
    close(shown(page, 0)["z"], transformer.attention(SENTENCES[0]).maps["cross"].weights[0])
    page.select_option("#input", "1")
    drawn(page, 0)  # a new input draws new panels
    expected = transformer.attention(SENTENCES[1])
    assert page.text_content("#panel-0 .output") == f"→ {expected.output}"
    close(shown(page, 0)["z"], expected.maps["cross"].weights[0])
    close(shown(page, 1)["z"], attnlab.load(bahdanau_run).attention(SENTENCES[1]).maps["additive"].weights[0])
