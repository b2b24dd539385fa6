"""Flower's start waits until every given queue has a worker (roles/flower/files/flower_wait_workers.py)."""

# SPDX-License-Identifier: MIT

import importlib.util
import pathlib

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "roles" / "flower" / "files" / "flower_wait_workers.py"
SPEC = importlib.util.spec_from_file_location("flower_wait_workers", SCRIPT)
wait = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(wait)


class Clock:
    """A fake monotonic clock: sleep moves it, each answer takes `cost` seconds."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def asker(clock, answers, cost=1.0):
    """ask() returning (or raising) the given answers in turn, the last one forever."""
    answers = list(answers)

    def ask():
        clock.now += cost
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return ask


def replies(**nodes):
    return {node: [{"name": queue} for queue in queues] for node, queues in nodes.items()}


def test_consumed_queues_reads_every_node_and_tolerates_no_reply():
    assert wait.consumed_queues(None) == set()
    assert wait.consumed_queues({"a@x": None}) == set()
    assert wait.consumed_queues(replies(a=["celery"], b=["customers", "reports"])) == {"celery", "customers", "reports"}


def test_returns_at_once_when_every_queue_is_consumed():
    clock, said = Clock(), []
    ask = asker(clock, [replies(a=["celery", "customers"])])
    assert wait.wait_for_queues(ask, ["celery", "customers"], 120, clock, clock.sleep, said.append) == []
    assert clock.now == 1.0
    assert said == []


def test_waits_through_broker_errors_and_missing_workers():
    clock = Clock()
    ask = asker(clock, [ConnectionError("refused"), replies(a=["celery"]), replies(a=["celery"], b=["customers"])])
    assert wait.wait_for_queues(ask, ["customers", "celery"], 120, clock, clock.sleep, print) == []
    assert clock.now == 3.0


def test_gives_up_after_the_timeout_and_names_what_is_missing():
    clock, said = Clock(), []

    def say(text, **_kwargs):
        said.append(text)

    ask = asker(clock, [replies(a=["celery"])], cost=0.25)
    missing = wait.wait_for_queues(ask, ["celery", "customers", "reports"], 10, clock, clock.sleep, say)
    assert missing == ["customers", "reports"]
    assert 10.0 <= clock.now <= 11.0
    assert said == ["flower-wait-workers: no worker consumes customers, reports after 10 s; starting Flower anyway"]


def test_a_last_error_is_reported():
    clock, said = Clock(), []
    ask = asker(clock, [OSError("broker down")])
    wait.wait_for_queues(ask, ["celery"], 3, clock, clock.sleep, lambda text, **_kw: said.append(text))
    assert said == ["flower-wait-workers: no worker consumes celery after 3 s (last error: broker down); "
                    "starting Flower anyway"]  # fmt: skip


def test_parse_takes_the_command_after_the_separator():
    args = wait.parse(["--queue=a", "--queue", "b", "--timeout=5", "--", "/bin/celery", "flower", "--conf=x"])
    assert (args.queue, args.timeout, args.command) == (["a", "b"], 5.0, ["/bin/celery", "flower", "--conf=x"])


def test_parse_needs_a_command():
    with pytest.raises(SystemExit):
        wait.parse(["--queue=a", "--"])


def test_main_without_queues_execs_the_command_at_once(monkeypatch):
    calls = []
    monkeypatch.setattr(wait.os, "execv", lambda path, argv: calls.append((path, argv)))
    wait.main(["--", "/bin/true", "x"])
    assert calls == [("/bin/true", ["/bin/true", "x"])]
