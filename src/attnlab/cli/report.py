"""``attnlab-report DIR [DIR ...]``: one table (Markdown + CSV) and one metric plot over every run under the DIRs.

    attnlab-report outputs/nw_parametric/multirun/2026-01-01_12-00-00 metric=val/mse
    attnlab-report outputs/bert_finetune_sst2/ablation outputs/bert_finetune_snli/ablation metric=val/acc
    attnlab-report outputs metric=val/loss out=reports/all maximize=val/token_acc
"""
from __future__ import annotations

import logging

from attnlab.cli.arguments import parse_key_values, run_main
from attnlab.cli.runs import write_report

USAGE = (
    "usage: attnlab-report DIR [DIR ...] [metric=NAME] [out=DIR] [maximize=NAME ...]\n"
    "  gathers every run (a dir holding .hydra/config.yaml) under the DIRs (a multirun dir, a task's outputs dir or\n"
    "  the whole outputs dir; several make one table) into report.md, report.csv and report_<metric>.png: overrides\n"
    "  as columns, final and best value of each val/test metric, the last logged step and the wall time.\n"
    "  metric: plotted over steps (default: the runs' monitor); out: where to write (default: the DIR, or the\n"
    "  common parent of several); maximize (repeatable): a metric whose best value is its largest (accuracy,\n"
    "  BLEU and F1 names and a run's monitor with monitor_mode=max already are)"
)


def run(argv: list[str]) -> None:
    options = parse_key_values(argv, ("metric", "out", "maximize"), repeatable=("maximize",), positional="dirs")
    if not options["dirs"]:
        raise ValueError("give at least one DIR")
    files = write_report(options["dirs"], out=options.get("out"), metric=options.get("metric"),
                         maximize=options["maximize"])
    print(files.markdown.read_text())
    for path in files:
        print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run_main("attnlab-report", USAGE, run, argv)


if __name__ == "__main__":
    main()
