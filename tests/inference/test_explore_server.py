"""``attnlab-explore``'s API, without a browser: a live server on a free port, asked over HTTP as the page asks it.
What it answers is what ``attnlab.load`` gives for the same input; bad input gets a JSON error, never a dead server."""
from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

import attnlab
from attnlab.cli.explore import main as explore_main

pytest.importorskip("fastapi", reason="the explorer's extra is not installed: pip install 'attnlab[explore]'")
from attnlab.explore import page, server  # noqa: E402
from attnlab.explore.views import Explorer  # noqa: E402

SENTENCE = "i see the red cat"


class Served:
    """A running explorer: ``url``, and ``get``/``post`` that return ``(status, JSON or text)``."""

    def __init__(self, url: str):
        self.url = url

    def request(self, path: str, body: bytes | None = None) -> tuple[int, object]:
        request = urllib.request.Request(self.url + path, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                status, content, kind = response.status, response.read().decode(), response.headers["Content-Type"]
        except urllib.error.HTTPError as error:
            status, content, kind = error.code, error.read().decode(), error.headers["Content-Type"]
        return status, json.loads(content) if kind.startswith("application/json") else content

    def get(self, path: str) -> tuple[int, object]:
        return self.request(path)

    def post(self, text: str | None = None, text_b: str | None = None, raw: bytes | None = None) -> tuple[int, object]:
        body = {key: value for key, value in (("text", text), ("text_b", text_b)) if value is not None}
        return self.request("/api/run", raw if raw is not None else json.dumps(body).encode())


@contextmanager
def serve(paths: list) -> Iterator[Served]:
    """The explorer of ``paths`` served on a free port of 127.0.0.1, in a thread, for the ``with`` block."""
    sock = server.bind(server.HOST, 0)
    running = server.server(server.create_app(Explorer(paths)))
    thread = threading.Thread(target=running.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not running.started:
        time.sleep(0.02)
    try:
        yield Served(f"http://{server.HOST}:{sock.getsockname()[1]}")
    finally:
        running.should_exit = True
        thread.join()


@pytest.fixture(scope="module")
def served(transformer_run, bert_run, classifier_run, nw_run, tmp_path_factory) -> Iterator[Served]:
    foreign = tmp_path_factory.mktemp("foreign") / "not_a_run.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with serve([transformer_run, bert_run, classifier_run, nw_run, foreign]) as running:
        yield running


def weights(result: dict, kind: str) -> torch.Tensor:
    return torch.tensor(result["maps"][kind]["weights"])


def test_the_page_and_its_scripts_come_from_the_server(served):
    status, html = served.get("/")
    assert status == 200 and '<script src="plotly.min.js"></script>' in html and "http" not in html
    status, plotly_js = served.get("/plotly.min.js")
    assert status == 200 and plotly_js == page.plotly_js().read_text(encoding="utf-8")
    assert served.get("/explore.js")[0] == 200
    assert served.get("/secret.js") == (404, {"error": "no script secret.js"})
    assert served.get("/docs")[0] == 404  # FastAPI's docs would load their script from a CDN


def test_models_are_described_and_a_foreign_checkpoint_is_an_error_entry(served, transformer_run):
    status, entries = served.get("/api/models")
    assert status == 200
    assert [e.get("describe", {}).get("family") for e in entries] == [
        "translation", "bert_pretraining", "bert_classifier", "nadaraya_watson", None]
    assert entries[0]["describe"] == attnlab.load(transformer_run).describe()
    assert "not_a_run.ckpt" in entries[4]["error"]


def test_each_checkpoint_answers_what_attnlab_load_gives(served, transformer_run, bert_run, classifier_run):
    status, answer = served.post(SENTENCE)
    assert status == 200 and answer["text"] == SENTENCE
    translation, pretraining, classifier, kernel, foreign = answer["results"]

    loaded = attnlab.load(transformer_run)
    assert translation["output"] == {"translation": loaded.translate(SENTENCE)}
    assert list(translation["maps"]) == ["encoder_self", "decoder_self", "cross"]
    for kind, attention in loaded.attention(SENTENCE).maps.items():
        assert translation["maps"][kind]["query_tokens"] == attention.query_tokens
        assert translation["maps"][kind]["key_tokens"] == attention.key_tokens
        torch.testing.assert_close(weights(translation, kind), attention.weights, atol=1e-6, rtol=0)

    torch.testing.assert_close(weights(pretraining, "self"), attnlab.load(bert_run).attention(SENTENCE).maps["self"].weights,
                               atol=1e-6, rtol=0)
    assert pretraining["output"] == {}  # no [MASK], no second sentence: only the maps
    prediction = attnlab.load(classifier_run).predict(SENTENCE)
    assert classifier["output"] == {"label": prediction.label, "probs": pytest.approx(prediction.probs)}
    assert "reads numbers" in kernel["error"]  # a sentence is no input for Nadaraya-Watson ...
    assert "not_a_run.ckpt" in foreign["error"]  # ... and a foreign checkpoint has nothing to show


def test_bert_fills_masks_and_judges_the_next_sentence(served, bert_run):
    text, text_b = "the cat sat on the [MASK] .", "the dog ran in the park ."
    status, answer = served.post(text, text_b)
    pretraining, classifier = answer["results"][1:3]
    bert = attnlab.load(bert_run)
    (candidates,) = bert.fill_mask(text)
    shown = pretraining["output"]["fill_mask"][0]
    assert status == 200 and [c["token"] for c in shown] == [c.token for c in candidates]
    assert [c["prob"] for c in shown] == pytest.approx([c.prob for c in candidates])
    is_next, prob = bert.next_sentence(text, text_b)
    assert pretraining["output"]["next_sentence"] == {"is_next": is_next, "prob": pytest.approx(prob)}
    torch.testing.assert_close(weights(pretraining, "self"), bert.attention(text, text_b).maps["self"].weights,
                               atol=1e-6, rtol=0)
    assert "single texts" in classifier["error"]  # an SST-2 classifier reads no pairs


def test_a_nadaraya_watson_model_reads_numbers(served, nw_run):
    status, answer = served.post("0.5, 1 2.5")
    kernel = answer["results"][3]
    expected = attnlab.load(nw_run).weights([0.5, 1, 2.5])
    assert status == 200 and kernel["output"] == {"prediction": expected.output}
    torch.testing.assert_close(weights(kernel, "kernel"), expected.maps["kernel"].weights, atol=1e-6, rtol=0)


def test_long_input_and_unknown_words_get_notices(served, transformer_run):
    max_len = attnlab.load(transformer_run).max_len
    status, answer = served.post("i see the red zebra " * 4)
    notices = answer["results"][0]["notices"]
    assert status == 200 and len(notices) == 2
    assert f"longer than the model's {max_len} positions" in notices[0]
    assert "not in the model's vocabulary" in notices[1] and "<unk>" in notices[1]
    assert served.post(SENTENCE)[1]["results"][0]["notices"] == []


def test_bad_requests_get_json_errors_and_the_server_answers_on(served):
    assert served.post("   ") == (400, {"error": "the text is empty: type a sentence"})
    status, answer = served.post(text_b="a second sentence alone")
    assert status == 422 and "text" in answer["error"]
    status, answer = served.post(raw=b"not json")
    assert status == 422 and answer["error"].startswith("bad request")
    assert served.post(SENTENCE)[0] == 200


def test_a_busy_port_is_a_usage_error_naming_it(transformer_run, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit) as stop:
            explore_main([f"ckpt_path={transformer_run}", f"port={port}"])
    assert stop.value.code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_the_command_serves_where_it_says_until_interrupted(transformer_run):
    command = [str(Path(sys.executable).parent / "attnlab-explore"), f"ckpt_path={transformer_run}", "port=0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        said = process.stdout.readline()
        url = re.fullmatch(r"attnlab-explore: serving on (http://127\.0\.0\.1:\d+) \(Ctrl-C stops\)\n", said)
        assert url, said + process.stderr.read() * (process.poll() is not None)
        status, entries = Served(url.group(1)).get("/api/models")
        assert status == 200 and entries[0]["describe"]["family"] == "translation"
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
    assert process.wait(timeout=60) == 0 and process.stdout.read() == "attnlab-explore: stopped\n"


def test_bad_command_lines_are_usage_errors(tmp_path, capsys):
    for argv, message in (
        ([], "missing ckpt_path"),
        ([f"ckpt_path={tmp_path / 'none.ckpt'}"], "checkpoint not found"),
        ([f"ckpt_path={tmp_path}", "export=page.html"], "go together"),
        ([f"ckpt_path={tmp_path}", "port=http"], "port must be an int"),
    ):
        with pytest.raises(SystemExit) as stop:
            explore_main(argv)
        assert stop.value.code == 2 and message in capsys.readouterr().err


def test_the_export_inlines_everything(transformer_run, tmp_path):
    (tmp_path / "sentences.txt").write_text(f"{SENTENCE}\nwe like a big dog\n")
    out = tmp_path / "page.html"
    explore_main([f"ckpt_path={transformer_run}", f"export={out}", f"input={tmp_path / 'sentences.txt'}"])
    html = out.read_text(encoding="utf-8")
    assert "<script src=" not in html and page.script("plotly.min.js")[:2000] in html
    data = json.loads(html.split("window.ATTNLAB_EXPORT = ", 1)[1].split(";</script>", 1)[0])
    assert [run["text"] for run in data["runs"]] == [SENTENCE, "we like a big dog"]
    expected = attnlab.load(transformer_run).attention("we like a big dog").maps["cross"].weights
    torch.testing.assert_close(weights(data["runs"][1]["results"][0], "cross"), expected, atol=1e-6, rtol=0)
    assert Path(data["models"][0]["path"]) == Path(transformer_run)
