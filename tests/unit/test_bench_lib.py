"""bench/lib.sh's CPU counters read what they say (no Docker needed for the controller's count)."""

# SPDX-License-Identifier: MIT

import pathlib
import subprocess

LIB = pathlib.Path(__file__).resolve().parents[2] / "bench" / "lib.sh"

# Spends about 0.3 CPU-seconds in a child process.
BUSY = "python3 -c 'import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass'"


def bash(script):
    result = subprocess.run(
        ["bash", "-c", f". {LIB}\n{script}"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_children_cpu_counts_a_finished_child():
    assert float(bash(f"( {BUSY}; bench_children_cpu )")) >= 0.25


def test_children_cpu_of_a_subshell_without_children_is_zero():
    # The converge bench reads it in a fresh subshell: what ran before it must not count.
    assert float(bash(f"{BUSY}\n( true; bench_children_cpu )")) < 0.1
