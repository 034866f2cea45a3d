"""``attnlab-report DIR [DIR ...]``: one table (Markdown + CSV) and one metric plot over every run under the DIRs.

    attnlab-report outputs/nw_parametric/multirun/2026-01-01_12-00-00 --metric val/mse
    attnlab-report outputs/bert_finetune_sst2/ablation outputs/bert_finetune_snli/ablation --metric val/acc
    attnlab-report outputs metric=val/loss out=reports/all     # Hydra-style key=value works too
"""
from __future__ import annotations

import argparse
import logging
import sys

from attnlab.report import write_report

_KEY_VALUE_OPTIONS = ("metric", "out", "maximize")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attnlab-report",
        description="Gather every run (a dir holding .hydra/config.yaml) under the DIRs into report.md, report.csv "
                    "and report_<metric>.png: overrides as columns, final and best value of each val/test metric, "
                    "the last logged step and the wall time.",
    )
    parser.add_argument("dirs", nargs="+", metavar="DIR",
                        help="a multirun dir, a task's outputs dir or the whole outputs dir; several make one table")
    parser.add_argument("--metric", default=None, help="metric to plot over steps (default: the runs' monitor)")
    parser.add_argument("--out", default=None, help="where to write the report (default: the DIR, or the common parent of several)")
    parser.add_argument("--maximize", action="append", default=[],
                        help="a metric whose best value is its largest (repeatable); accuracy/BLEU/F1 names "
                             "and a run's monitor with monitor_mode=max already are")
    return parser


def _normalise(argv: list[str]) -> list[str]:
    """``metric=val/loss`` -> ``--metric val/loss``."""
    result = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        result += [f"--{key}", value] if sep and key in _KEY_VALUE_OPTIONS else [arg]
    return result


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = _parser().parse_args(_normalise(sys.argv[1:] if argv is None else argv))
    try:
        files = write_report(args.dirs, out=args.out, metric=args.metric, maximize=args.maximize)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"attnlab-report: {error}")
    print(files.markdown.read_text())
    for path in files:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
