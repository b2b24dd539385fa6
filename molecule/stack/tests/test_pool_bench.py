"""Issue 5's pool bar as a gate of `make test`: the green pool reaches 20x prefork's throughput.

Runs the benchmark itself (bench/run_pool_bench.py, which copies bench/pool_bench.py to app1 and starts
throwaway workers there on queues of their own) and checks its JSON document: 1000 tasks of 100 ms on eventlet
at concurrency 100 against prefork at concurrency 2, measured in one run, every task counted by id exactly
once; and eventlet at concurrency 256 using less memory than prefork at concurrency 8. The report goes to a
temporary directory: docs/bench-pools.md is only rewritten by `make bench`.
"""

import json
import subprocess
import sys

import pytest
from stack_helpers import PROJECT

MIN_RATIO = 20.0


@pytest.fixture(scope="module")
def pool_bench(inventory, tmp_path_factory):
    out = tmp_path_factory.mktemp("pool-bench")
    proc = subprocess.run(
        [sys.executable, str(PROJECT / "bench" / "run_pool_bench.py"), "-i", inventory, "--host", "app1",
         "--output", str(out / "bench-pools.md"), "--json", str(out / "bench-pools.json")],
        cwd=PROJECT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode in (0, 1), f"the pool bench could not run:\n{proc.stdout}\n{proc.stderr}"
    return json.loads((out / "bench-pools.json").read_text(encoding="utf-8")), proc


def test_every_bench_task_completed_exactly_once(pool_bench):
    result, _proc = pool_bench
    for row in result["throughput"]:
        assert row["completed"] == row["tasks"], row
        assert (row["lost"], row["duplicates"], row["unknown"]) == (0, 0, 0), row
    for row in result["memory"]:
        assert row["completed"] == row["tasks"], row


def test_green_pool_reaches_twenty_times_prefork_throughput(pool_bench):
    result, proc = pool_bench
    green, prefork = result["throughput"]
    assert (green["pool"], green["concurrency"]) == ("eventlet", 100)
    assert (prefork["pool"], prefork["concurrency"]) == ("prefork", 2)
    # Prefork at concurrency 2 is bound by the sleeps: close to 2 / 0.1 s = 20 tasks/s, or the bench is broken.
    assert 10.0 <= prefork["tasks_per_second"] <= 20.5, prefork
    assert result["ratio"] >= MIN_RATIO, f"{proc.stdout}\n{proc.stderr}"


def test_green_pool_at_256_uses_less_memory_than_prefork_at_8(pool_bench):
    result, _proc = pool_bench
    green, prefork = result["memory"]
    assert (green["concurrency"], prefork["concurrency"]) == (256, 8)
    assert green["rss_rest_kib"] < prefork["rss_rest_kib"], (green, prefork)
    assert green["rss_load_kib"] < prefork["rss_load_kib"], (green, prefork)
