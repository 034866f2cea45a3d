"""``attnlab-average``: average the weights of several checkpoints into one (Vaswani et al., 2017, sec. 6.1).

    attnlab-average output=averaged.ckpt run/checkpoints/recent/a.ckpt run/checkpoints/recent/b.ckpt ...
    attnlab-average output=averaged.ckpt dir=run/checkpoints/recent last=5

The result is the newest input with its weights replaced by the mean, so it keeps the run config and the
tokenizer: ``attnlab-eval ckpt_path=averaged.ckpt`` and ``attnlab-translate`` take it as is.
"""
from __future__ import annotations

from pathlib import Path

from attnlab.cli.arguments import parse_key_values, positive_int, run_main
from attnlab.training.averaging import latest_checkpoints, write_averaged_checkpoint

USAGE = "usage: attnlab-average output=FILE (CKPT CKPT ... | dir=DIR [last=5])"


def run(argv: list[str]) -> None:
    options = parse_key_values(
        argv, ("output", "dir", "last"), defaults={"last": "5"}, required=("output",), positional="checkpoints"
    )
    paths = [Path(path) for path in options["checkpoints"]]
    if "dir" in options:
        if paths:
            raise ValueError("give checkpoint paths or dir=, not both")
        paths = latest_checkpoints(options["dir"], positive_int("last", options["last"]))
    if not paths:
        raise ValueError("no checkpoints to average")
    output = write_averaged_checkpoint(paths, options["output"])
    print(f"averaged {len(paths)} checkpoints into {output}")


def main(argv: list[str] | None = None) -> None:
    run_main("attnlab-average", USAGE, run, argv)


if __name__ == "__main__":
    main()
