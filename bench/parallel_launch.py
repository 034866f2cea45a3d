"""Wall-time gain of ``hydra/launcher=parallel``: the same one-thread jobs one after another (Hydra's basic
launcher) and N at a time (one core each), alternated, each mode ``--rounds`` times; prints one Markdown table
with the machine's load average, which says how idle the machine was.

    .venv/bin/python bench/parallel_launch.py                 # 2 jobs, 2 rounds
    .venv/bin/python bench/parallel_launch.py --jobs 4 --epochs 400
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAIN = Path(sys.executable).parent / "attnlab-train"


def sweep(jobs: int, epochs: int, parallel: bool, outputs: Path) -> float:
    """Seconds of one multirun of ``jobs`` Nadaraya-Watson fits (one thread each); fails loudly if a job fails."""
    launcher = ["hydra/launcher=parallel", f"hydra.launcher.n_jobs={jobs}", "hydra.launcher.threads_per_job=1"]
    command = [str(TRAIN), "-m", *(launcher if parallel else []), "experiment=nw_parametric",
               f"seed={','.join(str(s) for s in range(1, jobs + 1))}", f"trainer.max_epochs={epochs}",
               "data.num_train=2000", "data.num_val=2000", "data.num_test=2000", "test=false",
               "~callbacks.progress_bar"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ATTNLAB_OUTPUTS": str(outputs)}
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, cwd=outputs, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2, help="jobs per multirun, and jobs at once in parallel")
    parser.add_argument("--epochs", type=int, default=200, help="epochs per job (its length)")
    parser.add_argument("--rounds", type=int, default=2, help="multiruns per mode, alternated")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"one after another": [], f"{args.jobs} at a time": []}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as outputs:
        for _ in range(args.rounds):
            for parallel, name in ((False, "one after another"), (True, f"{args.jobs} at a time")):
                times[name].append(sweep(args.jobs, args.epochs, parallel, Path(outputs)))
    load_after = os.getloadavg()
    sequential, parallel = (statistics.median(values) for values in times.values())
    print(f"{args.jobs} one-thread jobs (nw_parametric, {args.epochs} epochs on 2,000 points), {args.rounds} rounds; "
          f"{len(os.sched_getaffinity(0))} usable cores; load average (1 min) {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after\n")
    print("| launch | wall time (median) | each round |\n|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.1f} s | {', '.join(f'{v:.1f}' for v in values)} |")
    print(f"\nparallel / sequential: {parallel / sequential:.2f}")


if __name__ == "__main__":
    main()
