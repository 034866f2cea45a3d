"""``attnlab-report`` as a study: runs grouped into variants over seeds, intervals and the paired test on constructed
translation runs whose answer is known (identical variants: not significant; clearly better hypotheses:
significant), through the library and the command line."""
from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats as scipy_stats

from attnlab.cli import stats
from attnlab.cli.runs import load_runs
from attnlab.cli.variants import Resamples, compare_variants, find_baseline, group_variants
from attnlab.lit.predictions import write_predictions
from attnlab.lit.scores import corpus_scores
from cli_support import run_attnlab

WORDS = [f"w{i}" for i in range(60)]


def _references(n: int = 150) -> list[str]:
    rng = random.Random(0)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 12))) for _ in range(n)]


def _hypotheses(references: list[str], noise: float, seed: int) -> list[str]:
    """Each reference word swapped for a random one with probability ``noise``."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) if rng.random() < noise else w for w in ref.split()) for ref in references]


def _run(root: Path, name: str, overrides: list[str], seed: int, hypotheses: list[str] | None,
         references: list[str], status: str | None = None, metric: str = "test/bleu") -> Path:
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([*overrides, f"seed={seed}"]))
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "monitor": "val/bleu",
                                                                 "monitor_mode": "max"}))
    (run / "csv").mkdir()
    rows = [f"epoch,step,train/loss,train/elapsed_s,{metric}"]
    rows += [f"0,{step},{5.0 - step / 50 + seed / 10},{step * 1.5}," for step in range(10, 110, 10)]
    if hypotheses is not None:
        bleu = corpus_scores(hypotheses, references)["bleu"].score
        rows.append(f"0,100,,,{bleu}")
        (run / "translations").mkdir()
        (run / "translations" / "test.hyp").write_text("\n".join(hypotheses) + "\n")
        (run / "translations" / "test.ref").write_text("\n".join(references) + "\n")
    (run / "csv" / "metrics.csv").write_text("\n".join(rows) + "\n")
    if status is not None:
        (run / "launch.yaml").write_text(yaml.safe_dump({"status": status, "error": "ValueError: lr=-1"}))
    return run


def _study(root: Path) -> list[str]:
    """Four variants x 3 seeds: the baseline (noise 0.5), `same` (the baseline's very files), `alike` (noise 0.5,
    other draws), `better` (noise 0.1); plus one failed run."""
    refs = _references()
    for seed in (1, 2, 3):
        base = _hypotheses(refs, 0.5, seed)
        _run(root, f"{seed}-base", ["+ablation=baseline"], seed, base, refs)
        _run(root, f"{seed}-same", ["+ablation=same"], seed, base, refs)
        _run(root, f"{seed}-alike", ["+ablation=alike"], seed, _hypotheses(refs, 0.5, 100 + seed), refs)
        _run(root, f"{seed}-better", ["+ablation=better"], seed, _hypotheses(refs, 0.1, 200 + seed), refs)
    _run(root, "9-broken", ["+ablation=broken"], 1, None, refs, status="FAILED")
    return refs


def test_runs_group_into_variants_by_overrides_without_seed(tmp_path: Path):
    _study(tmp_path)
    variants, excluded = group_variants(load_runs(tmp_path))
    # in order of first appearance (run dirs sort naturally: 1-alike, 1-base, 1-better, 1-same, 2-alike, ...)
    assert [v.label for v in variants] == ["+ablation=alike", "+ablation=baseline", "+ablation=better",
                                           "+ablation=same"]
    assert all(sorted(run.seed for run in v.runs) == [1, 2, 3] for v in variants)
    assert [run.name for run in excluded] == ["9-broken"]  # failed: listed, not averaged
    assert find_baseline(variants, "+ablation=better") is variants[2]
    assert find_baseline(variants, None) is variants[0]  # default: the first
    with pytest.raises(ValueError, match="baseline='\\+ablation=nope' must name one variant.*\\+ablation=same"):
        find_baseline(variants, "+ablation=nope")


def test_paired_test_knows_identical_from_clearly_better(tmp_path: Path):
    _study(tmp_path)
    variants, _ = group_variants(load_runs(tmp_path))
    resamples = Resamples("test/bleu", [run for v in variants for run in v.runs])
    assert resamples.num_examples == 150
    baseline = find_baseline(variants, "+ablation=baseline")
    rows = {row.variant.label: row for row in compare_variants(variants, baseline, "test/bleu", resamples)}
    same, alike, better = (rows[f"+ablation={name}"] for name in ("same", "alike", "better"))
    assert same.difference.difference == 0 and same.verdict == "not significant"
    assert alike.verdict == "not significant" and alike.difference.low < 0 < alike.difference.high
    assert better.verdict == "better" and better.difference.low > 0 and better.difference.p_value < 0.01
    assert better.seeds_significant_alone == "3/3"
    # the test-set part is real and paired: one draw for every run, so identical outputs differ by exactly 0 in
    # every resample, while other outputs spread
    assert same.difference.test_se == 0 and better.difference.test_se > 0 and alike.difference.test_se > 0


def test_intervals_are_students_t():
    summary = stats.summarize([1.0, 2.0, 3.0])
    assert (summary.n, summary.mean, summary.std) == (3, 2.0, 1.0)
    assert summary.half_width == pytest.approx(4.302653 / np.sqrt(3), rel=1e-5)  # t(0.975, 2) = 4.3027
    assert stats.summarize([5.0]).half_width is None  # one seed: no interval
    welch = stats.compare([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])  # R: t.test(c(4,5,6), c(1,2,3)) -> p = 0.02131, df 4
    assert welch.difference == 3.0 and welch.p_value == pytest.approx(0.02131, abs=1e-5)
    assert welch.high - 3.0 == pytest.approx(scipy_stats.t.ppf(0.975, 4) * np.sqrt(2 / 3))
    widened = stats.compare([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], test_variance=1.0)
    assert widened.p_value > welch.p_value and widened.high - widened.low > welch.high - welch.low
    assert stats.compare([1.0], [2.0, 3.0]).p_value is None


def test_runs_on_different_test_sets_are_refused(tmp_path: Path):
    refs = _references()
    _run(tmp_path, "a", ["+ablation=baseline"], 1, _hypotheses(refs, 0.5, 1), refs)
    other = _references(151)[1:]
    _run(tmp_path, "b", ["+ablation=better"], 1, _hypotheses(other, 0.1, 2), other)
    with pytest.raises(ValueError, match="2 different test sets.*split_seed"):
        Resamples("test/bleu", load_runs(tmp_path))


def test_report_command_answers_the_question(tmp_path: Path):
    _study(tmp_path / "study")
    out = tmp_path / "report"
    proc = run_attnlab([str(tmp_path / "study"), "metric=test/bleu", "baseline=+ablation=baseline", f"out={out}"],
                       tmp_path, program="attnlab-report")
    assert "13 runs: 12 in 4 variants (3 seeds each), 1 not averaged" in proc.stdout
    assert "paired bootstrap over 150 test examples" in proc.stdout and "Welch" in proc.stdout
    assert "- 9-broken: FAILED (ValueError: lr=-1)" in proc.stdout
    with (out / "report_variants.csv").open(newline="") as handle:
        rows = {row["variant"]: row for row in csv.DictReader(handle)}
    assert rows["+ablation=baseline"]["verdict"] == "baseline" and rows["+ablation=baseline"]["seeds"] == "3"
    assert rows["+ablation=same"]["verdict"] == "not significant"
    assert rows["+ablation=better"]["verdict"] == "better" and float(rows["+ablation=better"]["difference"]) > 20
    assert float(rows["+ablation=better"]["steps"]) == 100
    for name in ("report_test_bleu.png", "report_train_loss.png"):  # mean and band, by step and by wall time
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    one_seed = run_attnlab([str(tmp_path / "study" / "1-base"), str(tmp_path / "study" / "1-better"),
                            "metric=test/bleu", f"out={tmp_path / 'one'}"], tmp_path, program="attnlab-report")
    assert "no interval" in one_seed.stdout


def test_classifier_predictions_make_the_same_paired_test(tmp_path: Path):
    """test/acc from predictions/test.tsv: a classifier right on 90 % of the examples beats one right on 60 %."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    for seed in (1, 2, 3):
        for name, right in (("baseline", 0.6), ("better", 0.9)):
            predicted = np.where(rng.random(400) < right, labels, 1 - labels)
            run = _run(tmp_path, f"{seed}-{name}", [f"+ablation={name}"], seed, None, [], metric="test/acc")
            write_predictions(run / "predictions" / "test.tsv", labels.tolist(), predicted.tolist())
            with (run / "csv" / "metrics.csv").open("a") as handle:
                handle.write(f"0,100,,,{float((predicted == labels).mean())}\n")
    variants, _ = group_variants(load_runs(tmp_path))
    resamples = Resamples("test/acc", [run for v in variants for run in v.runs])
    assert resamples.num_examples == 400
    baseline, better = compare_variants(variants, variants[0], "test/acc", resamples)
    assert baseline.verdict == "baseline" and better.verdict == "better" and better.difference.test_se > 0
    assert better.difference.difference == pytest.approx(0.3, abs=0.05)
