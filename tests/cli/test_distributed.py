"""``trainer=ddp_cpu`` (two processes over gloo) inside a Hydra multirun: each job trains on both ranks in its
own dir, no rank starts a sweep of its own, and the result equals a one-process run; a translation model's
scores and loss under DDP, where each rank decodes different sentences, equal one process's exactly."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hydra.utils import instantiate
from pytorch_lightning.strategies import FSDPStrategy

from attnlab.layers.blocks import PostNormBlock, PreNormBlock
from cli_support import find_run_dirs, metric_history, run_attnlab, tiny_transformer_args, write_pairs

TOLERANCE = 1e-6  # NW's one batch goes to both ranks: DDP's averaged gradient equals the single-process one
# ... once DDP has given rank 1 rank 0's weights: rank 1 starts from others, so a DDP that did not sync them
# (or the gradients after) would leave the single-process trajectory
PERTURB = "+callbacks.perturb={_target_:ddp_callbacks.PerturbRank1,factor:3.0}"


@pytest.fixture(scope="module")
def ddp_sweep(tmp_path_factory) -> tuple[Path, str]:
    outputs = tmp_path_factory.mktemp("ddp")
    proc = run_attnlab(["-m", "experiment=nw_parametric", "trainer=ddp_cpu", "kernel.init_w=0.5,2.0",
                        "trainer.max_epochs=2", "test=false", "~callbacks.progress_bar", PERTURB], outputs, timeout=400)
    return outputs, proc.stdout + proc.stderr


@pytest.mark.slow
def test_ddp_cpu_inside_multirun_runs_each_job_once_on_two_ranks(ddp_sweep):
    outputs, log = ddp_sweep
    assert log.count("Launching 2 jobs locally") == 1  # rank 1 re-ran one job, not the sweep
    assert log.count("#0 : ") == 1 and log.count("#1 : ") == 1
    assert log.count("GLOBAL_RANK: 1, MEMBER: 2/2") == 2  # each job had its second rank
    (sweep,) = (outputs / "nw_parametric" / "multirun").iterdir()
    jobs = find_run_dirs(outputs)
    assert jobs == [sweep / "0", sweep / "1"]  # no stray run dirs from the launched ranks
    for job, init_w in zip(jobs, (0.5, 2.0)):
        assert (job / "train_ddp_process_1.log").is_file()  # rank 1 ran in the job's dir
        checkpoints = sorted(p.name for p in (job / "checkpoints").iterdir())
        assert len(checkpoints) == 2 and checkpoints[1] == "last.ckpt"  # written once, by rank 0
        saved = torch.load(job / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        assert saved["global_step"] == 2
        assert saved["attnlab_config"]["kernel"]["init_w"] == init_w
        assert saved["attnlab_config"]["trainer"]["devices"] == 2


@pytest.mark.slow
def test_ddp_cpu_matches_one_process(ddp_sweep, tmp_path: Path):
    outputs, _ = ddp_sweep
    single = tmp_path / "single"
    run_attnlab(["experiment=nw_parametric", "kernel.init_w=2.0", "trainer.max_epochs=2", "test=false",
                 "~callbacks.progress_bar", f"hydra.run.dir={single}"], tmp_path)
    (sweep,) = (outputs / "nw_parametric" / "multirun").iterdir()
    ddp, one = metric_history(sweep / "1", "val/mse"), metric_history(single, "val/mse")
    assert [step for step, _ in ddp] == [step for step, _ in one] == [0, 1]
    for (_, a), (_, b) in zip(ddp, one):
        assert abs(a - b) <= TOLERANCE


@pytest.mark.slow
def test_a_time_budget_under_ddp_gives_both_ranks_rank_0s_horizon(tmp_path: Path):
    """Rank 1's budget clock runs 3 s ahead, so its own estimates would be shorter: the horizon is rank 0's."""
    record = tmp_path / "horizons"
    run_attnlab(["experiment=nw_parametric", "trainer=ddp_cpu", "budget=0.1", "test=false", "~callbacks.progress_bar",
                 "+model.scheduler={_target_:attnlab.training.optim.cosine_warmup,_partial_:true,warmup_fraction:0.1}",
                 f"+callbacks.horizon={{_target_:ddp_callbacks.SkewAndRecordHorizon,out:'{record}',skew:3.0}}"],
                tmp_path, timeout=400)
    rank0, rank1 = (json.loads(Path(f"{record}-rank{rank}.json").read_text()) for rank in (0, 1))
    assert len(rank0) > 10 and len(set(rank0)) > 2  # re-estimated as the run went
    assert rank1 == rank0


@pytest.mark.slow
def test_ddp_translation_scores_and_loss_equal_one_process_exactly(tmp_path: Path):
    """40 validation and 40 test pairs in batches of 8: rank 0 decodes 3 batches, rank 1 the other 2. Gathered by
    the pairs' index, the scores, the loss and the written files equal one process's bit for bit; a rank left out
    or a sentence counted twice would change them."""
    data = write_pairs(tmp_path / "pairs", counts=(96, 40, 40))
    trained = tmp_path / "ddp_train"
    run_attnlab([*tiny_transformer_args(data), "trainer=ddp_cpu", "trainer.max_epochs=2",
                 "model.scheduler.warmup_steps=4", "model.scheduler.warmup_fraction=null", "model.decode.max_steps=8", f"hydra.run.dir={trained}"],
                tmp_path, timeout=400)
    assert (trained / "train_ddp_process_1.log").is_file()
    (best,) = (trained / "checkpoints").glob("best-*.ckpt")
    one, two = tmp_path / "eval_one", tmp_path / "eval_two"
    run_attnlab([f"ckpt_path={best}", f"hydra.run.dir={one}"], tmp_path, program="attnlab-eval")
    run_attnlab([f"ckpt_path={best}", "trainer=ddp_cpu", f"hydra.run.dir={two}"], tmp_path, program="attnlab-eval",
                timeout=400)
    assert (two / "train_ddp_process_1.log").is_file()  # (Lightning names every rank-1 log so)

    for name in ("test/loss", "test/token_acc", "test/bleu", "test/chrf", "test/ter"):
        values = [metric_history(run, name)[-1][1] for run in (trained, one, two)]
        assert values[0] == values[1] == values[2], (name, values)
    references = (data / "test.fr").read_text().splitlines()
    for run in (trained, two):
        for suffix in ("src", "hyp", "ref"):
            assert (run / "translations" / f"test.{suffix}").read_text() == (one / "translations" / f"test.{suffix}").read_text()
        assert json.loads((run / "translations" / "test.scores.json").read_text()) == json.loads(
            (one / "translations" / "test.scores.json").read_text())
    assert (one / "translations" / "test.ref").read_text().splitlines() == references  # each once, corpus order
    assert (trained / "translations" / "val.ref").read_text().splitlines() == (data / "valid.fr").read_text().splitlines()


def test_fsdp_strategy_wraps_each_block_and_saves_full_checkpoints(compose):
    """Lightning 2.6 runs FSDP on CUDA only (``accelerator='cpu'`` is refused), so here its strategy object is
    built and checked; tests/lit/test_strategies.py applies its activation-checkpointing policy to real models."""
    strategy = instantiate(compose("trainer=fsdp").trainer.strategy)
    assert isinstance(strategy, FSDPStrategy)
    assert strategy.kwargs["auto_wrap_policy"]._module_classes == {PostNormBlock, PreNormBlock}
    assert strategy._state_dict_type == "full" and not strategy._activation_checkpointing_kwargs
    checkpointed = instantiate(compose("trainer=fsdp", "trainer.strategy.activation_checkpointing=true").trainer.strategy)
    assert checkpointed._activation_checkpointing_kwargs["auto_wrap_policy"]._module_classes == {PostNormBlock, PreNormBlock}


def test_slurm_launcher_follows_the_trainer(compose):
    cfg = compose("hydra/launcher=submitit_slurm", "trainer=ddp", "trainer.num_nodes=2",
                  "hydra.launcher.gpus_per_node=4", "experiment=nw_parametric", hydra_node=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.nodes, launcher.gpus_per_node, launcher.tasks_per_node) == (2, 4, 4)  # one rank per GPU
    assert launcher.submitit_folder.startswith(cfg.hydra.sweep.dir) and launcher.name == "nw_parametric"
