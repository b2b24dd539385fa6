"""The TLS bench's pieces: the plain environment of a comparison run, the plain/TLS ratios and the failures."""

# SPDX-License-Identifier: MIT

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bench"))

import pool_bench  # noqa: E402
import run_tls_bench  # noqa: E402

ENV = {
    "CELERY_BROKER_URL": "amqps://myproject:s3cr%2Ft@broker:5671/myproject",
    "CELERYOPS_BROKER_CA_FILE": "/etc/celery/broker-ca.crt",
    "DJANGO_SETTINGS_MODULE": "myproject.settings",
}


def test_the_plain_environment_drops_tls_and_keeps_the_rest():
    plain = pool_bench.plain_environment(ENV, 5672)
    assert plain["CELERY_BROKER_URL"] == "amqp://myproject:s3cr%2Ft@broker:5672/myproject"
    assert "CELERYOPS_BROKER_CA_FILE" not in plain
    assert plain["DJANGO_SETTINGS_MODULE"] == "myproject.settings"
    assert ENV["CELERY_BROKER_URL"].startswith("amqps://"), "the input must not change"


def test_a_plain_url_is_refused():
    with pytest.raises(ValueError, match="not amqps"):
        pool_bench.plain_environment({"CELERY_BROKER_URL": "amqp://u:p@broker:5672/v"}, 5672)


def row(round_number, transport, pattern, rate, completed=100, duplicated=0):
    return {"round": round_number, "transport": transport, "pattern": pattern, "tasks": 100,
            "completed": completed, "duplicated": duplicated, "tasks_per_second": rate}  # fmt: skip


def test_the_ratio_is_the_median_of_each_rounds_plain_over_tls():
    measured = [row(1, "amqps", "steady", 100), row(1, "amqp", "steady", 110),
                row(2, "amqps", "steady", 100), row(2, "amqp", "steady", 130),
                row(3, "amqps", "steady", 200), row(3, "amqp", "steady", 240)]  # fmt: skip
    assert run_tls_bench.ratio_of(measured, "steady", "tasks_per_second") == 1.2
    assert run_tls_bench.ratio_of(measured, "burst", "tasks_per_second") is None


def test_lost_or_repeated_tasks_are_failures():
    measured = [row(1, "amqps", "steady", 100), row(1, "amqp", "burst", 90, completed=99),
                row(2, "amqp", "steady", 90, duplicated=1)]  # fmt: skip
    problems = run_tls_bench.failures(measured)
    assert len(problems) == 2
    assert "round 1 amqp burst: 99 of 100 completed" in problems[0]
