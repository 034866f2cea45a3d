"""``attnlab.load`` itself: checkpoint or run dir, one weights-only read, clear errors for files it cannot use,
descriptions and attention results that serialise and plot, and a cheap ``import attnlab``."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
from matplotlib.figure import Figure

import attnlab
from attnlab.training.averaging import selected_checkpoint


def test_a_run_dir_loads_the_checkpoint_it_stands_for(transformer_run):
    by_dir = attnlab.load(transformer_run)
    by_file = attnlab.load(selected_checkpoint(transformer_run))
    assert by_dir.path == by_file.path and by_dir.describe() == by_file.describe()
    description = json.loads(json.dumps(by_dir.describe()))
    assert description["family"] == "translation" and description["experiment"] == "transformer_mt"
    assert description["model"] == "Transformer" and description["max_len"] == 8
    assert description["decode"]["strategy"] == "greedy"


def test_a_run_dir_with_a_selection_loads_the_selected_checkpoint(nw_run, tmp_path):
    """``checkpoints/selected.json`` (written after checkpoint averaging) names the checkpoint, as for attnlab-eval."""
    checkpoints = tmp_path / "run" / "checkpoints"
    checkpoints.mkdir(parents=True)
    for name in ("last.ckpt", "chosen.ckpt"):
        shutil.copy(nw_run / "checkpoints" / "last.ckpt", checkpoints / name)
    (checkpoints / "selected.json").write_text(json.dumps({"checkpoint": "chosen.ckpt"}))
    assert attnlab.load(tmp_path / "run").path == checkpoints / "chosen.ckpt"


def test_missing_corrupt_and_foreign_files_are_errors_naming_them(tmp_path, nw_run):
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*nowhere.ckpt"):
        attnlab.load(tmp_path / "nowhere.ckpt")
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=f"{corrupt} is not a loadable checkpoint"):
        attnlab.load(corrupt)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError, match=f"{foreign} is not an attnlab training checkpoint"):
        attnlab.load(foreign)
    (tmp_path / "empty_run" / "checkpoints").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="empty_run holds none of checkpoints/selected.json"):
        attnlab.load(tmp_path / "empty_run")


def test_attention_results_serialise_and_plot_every_layer_and_head(transformer_run):
    result = attnlab.load(transformer_run).attention("i see the red cat")
    data = json.loads(json.dumps(result.to_dict()))
    assert list(data["maps"]) == ["encoder_self", "decoder_self", "cross"] and data["output"] == result.output
    assert torch.tensor(data["maps"]["cross"]["weights"]).shape == result.maps["cross"].weights.shape
    grid = result.plot()  # the cross-attention: 2 layers x 2 heads, plus the colour bar
    assert isinstance(grid, Figure) and len(grid.axes) == 2 * 2 + 1
    assert "cross attention" in grid._suptitle.get_text()
    assert len(result.plot("encoder_self", layer=1).axes) == 2 + 1
    with pytest.raises(ValueError, match="no 'self' attention in this result; it has"):
        result.plot("self")
    with pytest.raises(ValueError, match="layer=2 is out of range for 2 layers"):
        result.plot(layer=2)


def test_importing_attnlab_imports_neither_torch_nor_hydra():
    code = "import sys, attnlab; print(sorted({'torch', 'hydra', 'pytorch_lightning'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
