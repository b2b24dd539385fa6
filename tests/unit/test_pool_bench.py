"""The pool benchmark's arithmetic: percentiles, a run's counts and latencies, the ratios and the verdict."""

# SPDX-License-Identifier: MIT

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bench"))

import pool_bench  # noqa: E402
import run_pool_bench  # noqa: E402


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [([], 0.5, None), ([3.0], 0.95, 3.0), ([4, 1, 3, 2], 0.5, 2), ([*range(1, 101)], 0.95, 95)],
)
def test_percentile_is_nearest_rank(values, fraction, expected):
    assert pool_bench.percentile(values, fraction) == expected


def test_summarize_counts_lost_duplicated_and_unknown_tasks():
    sent = {"a": 10.0, "b": 10.5, "c": 11.0}
    entries = [
        {"id": "a", "start": 10.1, "ts": 10.2},
        {"id": "b", "start": 10.7, "ts": 10.8},
        {"id": "b", "start": 10.9, "ts": 11.0},
        {"id": "x", "start": 10.0, "ts": 12.0},
    ]
    row = pool_bench.summarize(sent, entries)
    assert (row["completed"], row["lost"], row["duplicates"], row["unknown"]) == (2, 1, 1, 1)
    # From the first publish (10.0) to the last completion of a task that was sent (11.0); x is not one.
    assert row["seconds"] == pytest.approx(1.0)
    assert row["tasks_per_second"] == pytest.approx(2.0)
    # Latencies 0.1, 0.2 and 0.4 s (each run of b counts).
    assert row["latency_p50_ms"] == pytest.approx(200.0)
    assert row["latency_p95_ms"] == pytest.approx(400.0)


def test_summarize_of_a_prefilled_queue_starts_the_clock_at_the_consumer():
    sent = {"a": 1.0, "b": 1.0}
    entries = [{"id": "a", "start": 5.0, "ts": 5.5}, {"id": "b", "start": 5.0, "ts": 6.0}]
    assert pool_bench.summarize(sent, entries, started_at=5.0)["seconds"] == pytest.approx(1.0)


def test_parse_worker_reads_pool_concurrency_and_the_default_heartbeat_flag():
    assert pool_bench.parse_worker("eventlet:100") == ("eventlet", 100, False)
    assert pool_bench.parse_worker("eventlet:100:default") == ("eventlet", 100, True)
    with pytest.raises(Exception, match="POOL:CONCURRENCY"):
        pool_bench.parse_worker("eventlet:100:fast")


def row(pool, concurrency, rate, pattern="steady", heartbeat="0 (role)", as_role=True, **extra):
    base = {
        "pool": pool, "concurrency": concurrency, "heartbeat": heartbeat, "as_role": as_role, "pattern": pattern,
        "tasks": 1000,
        "task_seconds": 0.1, "publish_rate": 600.0, "completed": 1000, "lost": 0, "duplicates": 0, "unknown": 0,
        "seconds": 1000 / rate, "tasks_per_second": rate, "latency_p50_ms": 10.0, "latency_p95_ms": 20.0,
        "worker_cpu_ms_per_task": 1.0, "loadavg": [1.0, 1.5], "cpus": 2,
    }  # fmt: skip
    base.update(extra)
    return base


def result(green_rate=480.0, gevent_rate=470.0, memory=(70_000, 480_000)):
    return {
        "celery": "5.7.0", "python": "3.11.2", "host": "app1", "debian": "12 (bookworm)",
        "throughput": [
            row("eventlet", 100, green_rate), row("gevent", 100, gevent_rate),
            row("prefork", 2, 19.6, heartbeat="Celery default"), row("prefork", 8, 78.0, heartbeat="Celery default"),
            row("eventlet", 100, 9.8, heartbeat="Celery default", as_role=False, tasks=300, completed=300),
        ],
        "memory": [
            {"pool": "eventlet", "concurrency": 256, "tasks": 512, "task_seconds": 1.0, "publish_rate": 200.0,
             "completed": 512, "rss_rest_kib": memory[0], "rss_load_kib": memory[0] + 5000},
            {"pool": "prefork", "concurrency": 8, "tasks": 16, "task_seconds": 1.0, "publish_rate": 200.0,
             "completed": 16, "rss_rest_kib": memory[1], "rss_load_kib": memory[1] + 5000},
        ],
    }  # fmt: skip


def test_green_ratios_compare_each_green_pool_run_by_the_role_with_both_prefork_rows():
    ratios = run_pool_bench.green_ratios(result())
    assert ratios == {("eventlet", 100): (24.5, 6.2), ("gevent", 100): (24.0, 6.0)}


def test_a_good_result_passes():
    assert run_pool_bench.verdict(result()) == []


def test_eventlet_under_either_bar_fails():
    failures = run_pool_bench.verdict(result(green_rate=300.0))
    assert failures == ["steady: eventlet 100 is 15.3 x prefork 2 (goal >= 20)"]
    failures = run_pool_bench.verdict(result(green_rate=230.0))
    assert "steady: eventlet 100 is 2.9 x prefork 8 (goal >= 3)" in failures


def test_gevent_is_judged_against_prefork_8_only():
    assert run_pool_bench.verdict(result(gevent_rate=300.0)) == []
    assert run_pool_bench.verdict(result(gevent_rate=200.0)) == ["steady: gevent 100 is 2.6 x prefork 8 (goal >= 3)"]


def test_a_result_without_the_gated_pool_fails():
    data = result()
    data["throughput"] = [r for r in data["throughput"] if r["pool"] != "eventlet"]
    assert "no eventlet row with the steady pattern" in run_pool_bench.verdict(data)


def test_a_lost_task_or_more_memory_fails():
    bad = result(memory=(500_000, 480_000))
    bad["throughput"][2]["lost"] = 1
    failures = run_pool_bench.verdict(bad)
    assert any("prefork 2: 1000/1000 completed, 1 lost" in failure for failure in failures)
    assert any(failure.startswith("memory at rest") for failure in failures)


def test_the_report_has_a_section_per_release_with_a_table_per_pattern_and_its_verdict():
    bookworm = result()
    bookworm["throughput"] += [row("eventlet", 100, 450.0, pattern="burst"), row("prefork", 2, 19.0, pattern="burst")]
    trixie = result(green_rate=300.0)
    trixie["debian"] = "13 (trixie)"
    text = run_pool_bench.markdown([bookworm, trixie], today="2026-11-29")
    assert "## Debian 12 (bookworm)" in text
    assert "## Debian 13 (trixie)" in text
    assert "- Verdict: **pass**" in text
    assert "- Verdict: **FAIL** (steady: eventlet 100 is 15.3 x prefork 2 (goal >= 20))" in text
    assert text.count("### steady") == 2
    assert text.count("### burst") == 1
    line = "| eventlet | 100 | 0 (role) | 1000 | 600 | 480 | 10 | 20 | 1000/1000 | 0 | 0 | 1 | 1.0/1.5 | 24.5 | 6.2 |"
    assert line in text
