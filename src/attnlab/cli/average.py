"""``attnlab-average``: average the weights of several checkpoints into one (Vaswani et al., 2017, sec. 6.1).

    attnlab-average output=averaged.ckpt run/checkpoints/recent/a.ckpt run/checkpoints/recent/b.ckpt ...
    attnlab-average output=averaged.ckpt dir=run/checkpoints/recent last=5

The result is the newest input with its weights replaced by the mean, so it keeps the run config and the
tokenizer: ``attnlab-eval ckpt_path=averaged.ckpt`` and ``attnlab-translate`` take it as is.
"""
from __future__ import annotations

import sys
from pathlib import Path

from attnlab.lit.averaging import latest_checkpoints, write_averaged_checkpoint

USAGE = "usage: attnlab-average output=FILE (CKPT CKPT ... | dir=DIR [last=N])"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or any(arg in ("-h", "--help") for arg in argv):
        print(USAGE)
        return
    options = {"last": "5"}
    paths: list[Path] = []
    try:
        for argument in argv:
            key, sep, value = argument.partition("=")
            if sep and key in ("output", "dir", "last"):
                options[key] = value
            elif not sep:
                paths.append(Path(argument))
            else:
                raise ValueError(f"unexpected argument {argument!r}; allowed keys: output, dir, last")
        if "output" not in options:
            raise ValueError("missing output=FILE")
        if "dir" in options:
            if paths:
                raise ValueError("give checkpoint paths or dir=, not both")
            if not options["last"].isdigit():
                raise ValueError(f"last must be a positive int, got {options['last']!r}")
            paths = latest_checkpoints(options["dir"], int(options["last"]))
        if not paths:
            raise ValueError("no checkpoints to average")
        output = write_averaged_checkpoint(paths, options["output"])
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"attnlab-average: {error}\n{USAGE}") from error
    print(f"averaged {len(paths)} checkpoints into {output}")


if __name__ == "__main__":
    main()
