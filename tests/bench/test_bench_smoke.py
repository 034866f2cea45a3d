"""``python bench/run.py --quick`` end to end on the cheapest cases: one table, JSON and Markdown, skips."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN = [sys.executable, str(REPO_ROOT / "bench" / "run.py")]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    empty = tmp_path_factory.mktemp("no_data")
    completed = subprocess.run(
        [*RUN, "--cases", "gemm,attention_memory,data_prep", "--quick", "--repeats", "2", "--warmup", "0",
         "--threads", "1", "--data-dir", str(empty), "--out", str(out)],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return out, completed, json.loads((out / "latest.json").read_text())


def test_writes_latest_and_timestamped_tables(quick_run):
    out, completed, _ = quick_run
    names = sorted(p.name for p in out.iterdir() if p.is_file())
    assert {"latest.md", "latest.json"} <= set(names)
    stamped = [n for n in names if not n.startswith("latest")]
    assert sorted(Path(n).suffix for n in stamped) == [".json", ".md"]
    assert (out / "latest.md").read_text() == completed.stdout.rstrip("\n") + "\n"  # the printed table is the file


def test_json_states_machine_versions_and_method(quick_run):
    _, _, report = quick_run
    meta = report["meta"]
    machine = meta["machine"]
    for key in ("date", "cpu", "cores", "ram_gib", "torch_threads", "python", "torch", "pytorch_lightning"):
        assert machine[key] not in (None, ""), key
    assert machine["torch_threads"] == 1
    assert (meta["mode"], meta["repeats"], meta["warmup"], meta["device"]) == ("quick", 2, 0, "cpu")
    assert [case["name"] for case in report["cases"]] == ["gemm", "attention_memory", "data_prep"]


def test_rows_carry_figures_ratios_and_goal_verdicts(quick_run):
    _, _, report = quick_run
    gemm, memory, _ = report["cases"]
    assert gemm["status"] == memory["status"] == "ok"
    assert all(row["attnlab"]["value"] > 0 for row in gemm["rows"])
    per_length = memory["rows"][:-1]
    assert [row["setting"].split(",")[0] for row in per_length] == ["T=128", "T=256", "T=512"]
    for row in per_length:
        for ref in row["references"]:
            assert row["ratios"][ref["name"]] == pytest.approx(row["attnlab"]["value"] / ref["value"])
    growth = memory["rows"][-1]
    assert growth["goals"][0]["met"] in (True, False)
    assert set(growth["ratios"].values()) == {None}  # growth exponents are shown, not divided


def test_missing_corpus_is_a_skip_that_names_the_path(quick_run):
    _, _, report = quick_run
    data_prep = report["cases"][2]
    assert data_prep["status"] == "skipped"
    assert "wiki.train.tokens not found" in data_prep["reason"]


def test_markdown_is_one_table_with_every_case(quick_run):
    out, _, _ = quick_run
    text = (out / "latest.md").read_text()
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert table[0].startswith("| case | setting | metric | attnlab | peak MiB | reference |")
    assert len({len(line.split("|")) for line in table}) == 1  # every line has the same number of cells
    for name in ("gemm", "attention_memory", "data_prep"):
        assert any(line.startswith(f"| {name} |") for line in table)
    assert "skipped:" in text and "torch threads 1" in text


def test_unknown_case_is_rejected_with_the_choices():
    completed = subprocess.run([*RUN, "--cases", "gemm,warp_drive"], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2
    assert "warp_drive" in completed.stderr and "attention_memory" in completed.stderr


def quick_cases(out: Path, *args: str, timeout: float = 300) -> list[dict]:
    """The cases' JSON results of one quick, one-round run of ``bench/run.py`` with ``args``."""
    completed = subprocess.run(
        [*RUN, "--quick", "--repeats", "1", "--warmup", "0", *args, "--out", str(out)],
        capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads((out / "latest.json").read_text())["cases"]


def test_every_case_runs_in_quick_mode(tmp_path):
    """All of ``make bench``, one small round each (streaming on 1 % of WikiText-2), on the corpora of this machine:
    a change that breaks a case fails here. A case may skip only for a missing corpus or ``transformers``."""
    from bench.run import CASES

    cases = quick_cases(tmp_path, "--threads", "1", "--sizes", "0.01", timeout=900)
    assert [case["name"] for case in cases] == list(CASES)
    for case in cases:
        reason = case.get("reason") or ""
        assert case["status"] == "ok" or case["status"] == "skipped" and (
            reason.startswith("transformers is not ") or " not found" in reason), case


def test_causal_decoder_case_compares_the_is_causal_path_with_the_explicit_mask(tmp_path):
    """Needs no corpus: synthetic right-padded batches, the same net on both paths, equal logits where real."""
    (case,) = quick_cases(tmp_path, "--cases", "causal_decoder", "--threads", "1")
    assert case["status"] == "ok", case
    (row,) = case["rows"]
    assert row["metric"] == "useful target tokens/s" and row["ratios"]["explicit mask (before)"] > 0
    assert any("logits equal at real positions: True" in note for note in case["notes"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_device_cuda_without_a_gpu_is_rejected():
    completed = subprocess.run([*RUN, "--device", "cuda"], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2 and "sees no CUDA GPU" in completed.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_causal_decoder_case_on_cuda_times_both_precisions_and_names_the_sdpa_kernels(tmp_path):
    (case,) = quick_cases(tmp_path, "--cases", "causal_decoder", "--device", "cuda")
    assert [row["setting"].rsplit(", ", 1)[-1] for row in case["rows"]] == ["fp32", "bf16-mixed"]
    assert all(row["ratios"]["explicit mask (before)"] > 0 and row["attnlab"]["peak_mib"] > 0 for row in case["rows"])
    (fp32, bf16) = [note for note in case["notes"] if "logits equal at real positions: True" in note]
    assert "fp32 attnlab decoder self-attention: runs " in fp32 and "can run alone: " in fp32
    assert "bf16-mixed explicit mask (before) decoder self-attention: runs " in bf16


def test_precision_case_sets_bf16_beside_fp32_and_states_the_auto_choice(tmp_path):
    """Needs no corpus: synthetic batches; a bf16 GEMM row, then a Transformer and a BERT step in both precisions."""
    bucketing, precision = quick_cases(  # in CASES order
        tmp_path, "--cases", "precision,bert_bucketing", "--threads", "1", "--data-dir", str(tmp_path / "no_data"))
    assert precision["status"] == "ok", precision
    assert [row["setting"].split(" ")[0] for row in precision["rows"]] == ["GEMM", "transformer", "bert"]
    assert all(row["ratios"]["fp32"] > 0 for row in precision["rows"])
    assert any(note.startswith("trainer.precision=auto here: ") for note in precision["notes"])
    assert bucketing["status"] == "skipped" and "wiki.train.tokens not found" in bucketing["reason"]
