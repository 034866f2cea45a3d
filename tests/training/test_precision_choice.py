"""``trainer.precision=auto``: the choice with the hardware's capability faked both ways, the one-off timing where the
flags are ambiguous, the log line, and the default config."""
import logging
import math

import pytest
import pytorch_lightning as pl
import torch

from attnlab.cli.build import resolve_auto_precision
from attnlab.training import precision
from attnlab.training.precision import BF16, FP32, choose_cpu_precision, choose_precision, read_cpu_flags, resolve_precision


def no_timing():
    raise AssertionError("the flags decide here: no timing")


@pytest.mark.parametrize("flags", [{"fpu", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"}, {"amx_bf16"}])
def test_bf16_matrix_units_choose_bf16_without_timing(flags):
    choice = choose_cpu_precision(flags, no_timing)
    assert choice.precision == BF16 and "amx_bf16" in choice.reason


@pytest.mark.parametrize("flags", [{"fpu", "sse4_2", "avx2", "fma"}, {"avx512f", "avx512_vnni"}, {"fp", "asimd"}])
def test_no_bf16_instructions_choose_fp32_without_timing(flags):
    choice = choose_cpu_precision(flags, no_timing)
    assert choice.precision == FP32 and "no bf16" in choice.reason


@pytest.mark.parametrize("flags", [{"avx512f", "avx512_bf16"}, {"fp", "asimd", "bf16"}, None])
def test_ambiguous_or_unknown_flags_are_settled_by_a_timing(flags):
    assert choose_cpu_precision(flags, lambda: 3.1).precision == BF16
    slow = choose_cpu_precision(flags, lambda: 1.2)
    assert slow.precision == FP32 and "1.20x" in slow.reason


def test_gpus_follow_cuda_bf16_support_and_cpus_their_flags():
    assert choose_precision("gpu", cuda_bf16=lambda: True).precision == BF16
    assert choose_precision("gpu", cuda_bf16=lambda: False).precision == FP32
    assert choose_precision("cpu", cpu_flags=lambda: {"amx_bf16"}).precision == BF16
    assert choose_precision("cpu", cpu_flags=lambda: {"avx2"}).precision == FP32


def test_cpu_flags_are_read_from_cpuinfo_on_x86_and_arm(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16\n\nprocessor\t: 1\nflags\t\t: fpu avx2 amx_bf16\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert read_cpu_flags(x86) == {"fpu", "avx2", "amx_bf16"} and read_cpu_flags(arm) == {"fp", "asimd", "bf16"}
    assert read_cpu_flags(tmp_path / "absent") is None


def test_an_explicit_precision_is_kept_and_auto_is_logged(caplog):
    assert resolve_precision("32-true", "cpu", cpu_flags=no_timing) == "32-true"
    with caplog.at_level(logging.INFO, logger="attnlab.training.precision"):
        assert resolve_precision("auto", "cpu", cpu_flags=lambda: {"avx2"}) == FP32
    assert "trainer.precision=auto: 32-true (CPU has no bf16 instructions" in caplog.text


def test_auto_is_the_default_and_the_cli_writes_the_choice_into_the_config(compose, monkeypatch):
    for trainer in ("cpu", "gpu", "ddp", "ddp_cpu", "fsdp"):
        assert compose(f"trainer={trainer}").trainer.precision == "auto"
    cfg = compose("experiment=nw_parametric")
    monkeypatch.setattr(precision, "read_cpu_flags", lambda: {"amx_bf16"})
    resolve_auto_precision(cfg.trainer)
    assert cfg.trainer.precision == BF16
    monkeypatch.setattr(precision, "read_cpu_flags", lambda: {"avx2"})
    cfg = compose("experiment=nw_parametric")
    resolve_auto_precision(cfg.trainer)
    assert cfg.trainer.precision == FP32


def test_the_timing_is_fp32s_best_time_over_bf16s(monkeypatch):
    # fp32's three samples take 3, 2, 4 s, bf16's 1, 2, 1 s: best 2 s over best 1 s
    ticks = iter([0, 3, 10, 12, 20, 24, 30, 31, 40, 42, 50, 51])
    monkeypatch.setattr(precision.time, "perf_counter", lambda: next(ticks))
    assert precision.bf16_matmul_speedup(size=8, repeats=3) == 2.0


@pytest.mark.parametrize("capability, expected", [((7, 0), FP32), ((7, 5), FP32), ((8, 0), BF16), ((9, 0), BF16)])
def test_gpus_get_bf16_only_where_it_is_native_not_emulated(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    choice = choose_precision("gpu")
    assert choice.precision == expected and "compute capability" in choice.reason


@pytest.mark.parametrize("machine", ["arm64", "aarch64"])
def test_an_arm_cpu_without_cpuinfo_is_timed_not_taken_for_one_without_bf16(monkeypatch, machine):
    monkeypatch.setattr(precision, "read_cpu_flags", lambda: None)  # macOS (Apple M2+)
    monkeypatch.setattr(precision.platform, "machine", lambda: machine)
    assert choose_precision("cpu", speedup=lambda: 3.0).precision == BF16
    slow = choose_precision("cpu", speedup=lambda: 1.2)
    assert slow.precision == FP32 and "unknown CPU flags" in slow.reason and "1.20x" in slow.reason


def test_an_x86_cpu_without_cpuinfo_falls_back_to_torchs_probes(monkeypatch):
    monkeypatch.setattr(precision, "read_cpu_flags", lambda: None)
    monkeypatch.setattr(precision.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(precision, "torch_cpu_flags", lambda: {"amx_bf16"})
    assert choose_precision("cpu", speedup=no_timing).precision == BF16


def fit_nadaraya_watson(compose, tmp_path, precision: str) -> float:
    from hydra.utils import instantiate

    torch.manual_seed(0)
    cfg = compose("experiment=nw_parametric")
    module, data = instantiate(cfg.model), instantiate(cfg.data)
    trainer = pl.Trainer(max_epochs=5, precision=precision, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, datamodule=data)
    return float(trainer.callback_metrics["val/mse"])


def test_nadaraya_watson_trains_in_bf16_as_in_fp32(compose, tmp_path):
    fp32, bf16 = fit_nadaraya_watson(compose, tmp_path, "32-true"), fit_nadaraya_watson(compose, tmp_path, "bf16-mixed")
    assert math.isfinite(bf16) and bf16 == pytest.approx(fp32, rel=0.05)
