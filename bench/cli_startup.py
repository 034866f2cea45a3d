"""``python bench/cli_startup.py [--bin DIR] [--repeats N]``: how long ``attnlab-train`` takes to answer without
training, and whether it imported the training stack to do so.

Each command (``--help``, ``--cfg job``, a mistyped group choice) runs ``--repeats`` times in a fresh process;
the table gives the median wall and CPU time and whether ``pytorch_lightning`` and ``torch`` were imported (one more run
under ``-X importtime``). ``--bin`` picks the install to measure (default: this interpreter's), so two checkouts
compare side by side on the same machine.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "--help": ["--help"],
    "--cfg job": ["experiment=nw_parametric", "--cfg", "job"],
    "config error": ["attention=nonsense"],
}


def imported(stderr: str) -> set[str]:
    """Top-level modules named in ``-X importtime`` output."""
    lines = [line for line in stderr.splitlines() if line.startswith("import time:")]
    return {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in lines}


def cpu_seconds() -> float:
    """User + system CPU time of this process's finished children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(bin_dir: Path, args: list[str], repeats: int) -> tuple[float, float, set[str]]:
    """Median wall and CPU seconds of ``repeats`` plain runs (CPU time is what a busy machine distorts least), and
    the modules one more run under ``-X importtime`` loaded."""
    command = [str(bin_dir / "python"), str(bin_dir / "attnlab-train"), *args]
    wall, cpu = [], []
    with tempfile.TemporaryDirectory() as outputs:
        env = {**os.environ, "ATTNLAB_OUTPUTS": outputs}
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), cpu_seconds()
            subprocess.run(command, capture_output=True, env=env, cwd=outputs)
            wall.append(time.perf_counter() - start)
            cpu.append(cpu_seconds() - start_cpu)
        traced = subprocess.run([command[0], "-X", "importtime", *command[1:]], capture_output=True, text=True,
                                env=env, cwd=outputs)
    return statistics.median(wall), statistics.median(cpu), imported(traced.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", type=Path, default=Path(sys.executable).parent, help="a venv's bin dir")
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    print(f"attnlab-train from {options.bin}, median of {options.repeats} runs each\n")
    print("| command | wall s | CPU s | imports pytorch_lightning | imports torch |\n|---|---|---|---|---|")
    for name, args in COMMANDS.items():
        wall, cpu, modules = measure(options.bin, args, options.repeats)
        print(f"| `{name}` | {wall:.2f} | {cpu:.2f} | {'pytorch_lightning' in modules} | {'torch' in modules} |")


if __name__ == "__main__":
    main()
