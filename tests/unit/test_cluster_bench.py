"""The cluster benchmark's report: medians and the ratio per pattern, and what fails a run."""

# SPDX-License-Identifier: MIT

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bench"))

import run_cluster_bench  # noqa: E402


def _row(pattern, tps, **counts):
    row = {
        "pattern": pattern, "tasks": 100, "completed": 100, "lost": 0, "duplicates": 0, "unknown": 0,
        "tasks_per_second": tps, "publish_rate": 2 * tps, "latency_p50_ms": 5.0, "latency_p95_ms": 9.0,
    }  # fmt: skip
    row.update(counts)
    return row


def _lab(queue_type, brokers, *rows):
    return {
        "debian": "12", "celery": "5.7.0", "queue_type": queue_type, "brokers": brokers, "throughput": list(rows),
    }  # fmt: skip


def _result(cluster_rows_per_round, cluster_type="quorum"):
    rounds = [
        {
            "single": _lab("classic", 1, _row("steady", 100.0), _row("burst", 400.0)),
            "cluster": _lab(cluster_type, 3, *r),
        }
        for r in cluster_rows_per_round
    ]
    nodes = {"single": {"broker": {"rss_mib": 150.0, "data_mib": 2.0}}, "cluster": {}}
    return {"rounds": rounds, "nodes": nodes, "bench_args": ["--tasks", "100"], "date": "2026-11-30"}


def test_the_summary_gives_medians_and_the_cluster_to_single_ratio():
    result = _result(
        [
            [_row("steady", 90.0), _row("burst", 200.0)],
            [_row("steady", 100.0), _row("burst", 300.0)],
            [_row("steady", 80.0), _row("burst", 100.0)],
        ]
    )
    table = "\n".join(run_cluster_bench.summary_table(result))
    assert "| steady | single | 100.0 | 200.0 | 5.0 ms | 9.0 ms |  |" in table
    assert "| steady | cluster | 90.0 | 180.0 | 5.0 ms | 9.0 ms | 0.90 |" in table
    assert "| burst | cluster | 200.0 | 400.0 | 5.0 ms | 9.0 ms | 0.50 |" in table
    assert run_cluster_bench.problems(result) == []
    assert "Every task of every round ran exactly once." in run_cluster_bench.markdown({"x": result})


def test_a_lost_or_twice_run_task_or_a_wrong_queue_type_fails_the_run():
    lost = _result([[_row("steady", 90.0, completed=99, lost=1), _row("burst", 200.0, duplicates=1)]])
    found = run_cluster_bench.problems(lost)
    assert found == [
        "round 1, cluster, steady: 99 of 100 completed, 1 lost, 0 twice, 0 unknown",
        "round 1, cluster, burst: 100 of 100 completed, 0 lost, 1 twice, 0 unknown",
    ]
    assert "Problems: round 1, cluster, steady" in run_cluster_bench.markdown({"x": lost})
    classic = _result([[_row("steady", 90.0), _row("burst", 200.0)]], cluster_type="classic")
    assert run_cluster_bench.problems(classic) == ["round 1, cluster: queue type classic"]
