"""attnlab-translate and attnlab-eval read checkpoints an older attnlab wrote (tests/fixtures/checkpoints, commit
4c91047) and answer what that code answered when it wrote them."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import run_dirs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoints"
THREADS = {"OMP_NUM_THREADS": "1"}


def recorded(family: str) -> dict:
    return json.loads((FIXTURES / f"{family}.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("family", ["transformer", "bahdanau"])
def test_translate_reads_an_older_checkpoint(run_cli, family):
    record = recorded(family)
    result = run_cli("attnlab-translate", f"ckpt_path={FIXTURES / f'{family}.ckpt'}",
                     *(f"text={source}" for source in record["sources"]), env=THREADS)
    assert result.stdout.splitlines() == record["cli_translations"]


def test_eval_reads_an_older_checkpoint(run_cli, tmp_path):
    run_cli("attnlab-eval", f"ckpt_path={FIXTURES / 'nadaraya_watson.ckpt'}", env=THREADS)
    (eval_dir,) = run_dirs(tmp_path, "eval")
    with (eval_dir / "csv" / "metrics.csv").open(newline="") as handle:
        mse = [float(row["test/mse"]) for row in csv.DictReader(handle) if row.get("test/mse")]
    assert mse[-1] == pytest.approx(recorded("nadaraya_watson")["eval_test_mse"], rel=1e-6)
