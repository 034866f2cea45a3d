"""The W&B logger factory: offline exactly when no API key is configured, unless forced."""
from __future__ import annotations

from pathlib import Path

import pytest

from attnlab.training.loggers import has_wandb_api_key, wandb_logger


@pytest.fixture
def no_key(monkeypatch, tmp_path: Path) -> Path:
    for name in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    return tmp_path / "netrc"


def test_api_key_from_env_or_netrc(no_key: Path, monkeypatch):
    assert not has_wandb_api_key()
    no_key.write_text("machine example.com login user password secret\n")
    assert not has_wandb_api_key()  # an entry for another host is no W&B key
    no_key.write_text("machine api.wandb.ai login user password 0123456789abcdef\n")
    no_key.chmod(0o600)
    assert has_wandb_api_key()
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")
    assert not has_wandb_api_key()  # a self-hosted server needs its own entry
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert has_wandb_api_key()


@pytest.mark.parametrize("offline, key, mode", [(None, False, "offline"), (None, True, None),
                                                (True, True, "offline"), (False, False, "online")])
def test_mode_follows_the_key_unless_forced(no_key: Path, monkeypatch, tmp_path: Path, offline, key, mode):
    if key:
        monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    logger = wandb_logger(project="p", name="n", group="g", tags=["a"], save_dir=str(tmp_path / "run"),
                          offline=offline, id="abc12345")
    init = logger._wandb_init  # what wandb.init will get; no run is started here
    assert init.get("mode") == mode
    fields = (init["project"], init["name"], init["group"], init["tags"], init["id"])
    assert fields == ("p", "n", "g", ["a"], "abc12345")
    assert init["resume"] == "allow" and init["dir"] == str(tmp_path / "run")


def test_log_model_must_be_a_known_value(tmp_path: Path):
    with pytest.raises(ValueError, match="log_model must be true, false or 'all', got 'best'"):
        wandb_logger(project="p", save_dir=str(tmp_path), log_model="best")


def test_wandb_mode_env_decides_when_not_forced(no_key: Path, monkeypatch, tmp_path: Path):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_logger(project="p", save_dir=str(tmp_path))._wandb_init.get("mode") is None
