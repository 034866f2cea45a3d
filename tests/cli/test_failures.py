"""A user's mistake ends the command with its message alone (the traceback with HYDRA_FULL_ERROR=1), and a job
that failed before writing anything leaves no run dir."""
from __future__ import annotations

from pathlib import Path

from cli_support import run_attnlab, tiny_transformer_args, write_pairs


def mistyped_corpus(tmp_path: Path) -> list[str]:
    data = write_pairs(tmp_path / "pairs")
    args = tiny_transformer_args(data)
    return [arg.replace(f"{data}/train", f"{data}/trian") for arg in args]


def test_a_mistyped_corpus_path_prints_the_message_alone_and_leaves_no_run_dir(tmp_path: Path):
    outputs = tmp_path / "out"
    proc = run_attnlab(mistyped_corpus(tmp_path), outputs, check=False)
    assert proc.returncode == 1
    assert f"no parallel file {tmp_path / 'pairs' / 'trian'}.en or" in proc.stderr
    assert "Traceback" not in proc.stderr and "File \"" not in proc.stderr
    assert not list((outputs / "transformer_mt").iterdir())


def test_hydra_full_error_adds_the_traceback(tmp_path: Path):
    proc = run_attnlab(mistyped_corpus(tmp_path), tmp_path / "out", check=False, HYDRA_FULL_ERROR="1")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "attnlab.MissingFileError: no parallel file" in proc.stderr


def test_a_run_dir_holding_more_than_hydra_files_is_kept(tmp_path: Path):
    """A run dir holding more than Hydra's files (here a user's notes) is never removed."""
    run_dir = tmp_path / "kept"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("mine")
    proc = run_attnlab([*mistyped_corpus(tmp_path), f"hydra.run.dir={run_dir}"], tmp_path / "out", check=False)
    assert proc.returncode == 1
    assert (run_dir / "notes.txt").read_text() == "mine" and (run_dir / ".hydra" / "config.yaml").is_file()


def test_a_failed_job_of_a_sweep_keeps_its_dir_for_the_sweeps_record(tmp_path: Path):
    outputs = tmp_path / "out"
    proc = run_attnlab(["-m", *mistyped_corpus(tmp_path)], outputs, check=False)
    assert proc.returncode == 1
    assert "no parallel file" in proc.stderr and "Traceback" not in proc.stderr
    (sweep,) = (outputs / "transformer_mt" / "multirun").iterdir()
    assert (sweep / "0" / ".hydra" / "config.yaml").is_file()
