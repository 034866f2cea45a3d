"""``attnlab-explore``: see what trained checkpoints output for a sentence and every attention map behind it.

    attnlab-explore ckpt_path=outputs/transformer_mt/<run> [ckpt_path=<another run> ...] [port=8000]
    attnlab-explore ckpt_path=... export=page.html input=sentences.txt

Serves a page on http://127.0.0.1:PORT (checkpoints side by side on the same input), or writes one
self-contained HTML file of the sentences of ``input=`` (one a line, or text<TAB>text_b for BERT pairs) that
opens from disk with no server and no network. Needs ``pip install 'attnlab[explore]'``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from attnlab.cli.arguments import parse_key_values, run_main
from attnlab.cli.predict import read_inputs

USAGE = (
    "usage: attnlab-explore ckpt_path=PATH [ckpt_path=PATH ...] [host=127.0.0.1] [port=8000] [device=cpu|cuda]\n"
    "       attnlab-explore ckpt_path=PATH [ckpt_path=PATH ...] export=PAGE.html input=FILE [device=cpu|cuda]\n"
    "  PATH: a checkpoint or a run dir; input=FILE: one sentence a line, or text<TAB>text_b for pairs"
)
KEYS = ("ckpt_path", "host", "port", "device", "export", "input")
MISSING_EXTRA = "attnlab-explore needs its extra: pip install 'attnlab[explore]'"


def parse_arguments(argv: list[str]) -> dict[str, Any]:
    """``key=value`` pairs (see ``attnlab.cli.arguments``); ``ckpt_path`` repeats, ``export`` goes with ``input``."""
    options = parse_key_values(argv, KEYS, defaults={"host": "127.0.0.1", "port": "8000", "device": "cpu"},
                               required=("ckpt_path",), repeatable=("ckpt_path",))
    if ("export" in options) != ("input" in options):
        raise ValueError("export=PAGE.html and input=FILE go together: the page shows the sentences of the file")
    port = options["port"]
    if not port.isdigit() or int(port) > 65535:
        raise ValueError(f"port must be an int from 0 (any free port) to 65535, got {port!r}")
    options["port"] = int(port)
    return options


def run(argv: list[str]) -> None:
    options = parse_arguments(argv)
    try:
        from attnlab.explore import page, server
    except ImportError as error:
        raise ValueError(f"{MISSING_EXTRA} ({error})") from error
    from attnlab.explore.views import Explorer

    if "export" in options:
        texts_a, texts_b = read_inputs(options["input"])
        explorer = Explorer(options["ckpt_path"], options["device"])
        runs = [{"text": a, "text_b": b, "results": explorer.run(a, b)}
                for a, b in zip(texts_a, texts_b or [None] * len(texts_a))]
        Path(options["export"]).write_text(page.exported({"models": explorer.entries, "runs": runs}), encoding="utf-8")
        print(f"attnlab-explore: wrote {options['export']} ({len(runs)} inputs, {len(explorer.entries)} checkpoints)")
        return
    sock = server.bind(options["host"], options["port"])  # before loading: a busy port fails at once
    app = server.create_app(Explorer(options["ckpt_path"], options["device"]))
    print(f"attnlab-explore: serving on http://{options['host']}:{sock.getsockname()[1]} (Ctrl-C stops)", flush=True)
    try:
        server.server(app).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down on Ctrl-C, then raises it again
        print("attnlab-explore: stopped")


def main(argv: list[str] | None = None) -> None:
    run_main("attnlab-explore", USAGE, run, argv)


if __name__ == "__main__":
    main()
