"""The workers' hand-back command (roles/workers/files/celeryops_worker_control.py), with Celery faked.

The module registers its command only inside a Celery process; here fake ``celery`` modules stand in, so the
registration, the command and the CLI's app proxy run without Celery installed. The lab proves the real thing
(molecule/stack/tests/test_restart.py: a saturated prefork worker hands back what it could not start).
"""

# SPDX-License-Identifier: MIT

import collections
import importlib.util
import pathlib
import sys
import types

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "roles" / "workers" / "files" / "celeryops_worker_control.py"


def load(name="celeryops_worker_control_under_test"):
    spec = importlib.util.spec_from_file_location(name, SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fake_celery(monkeypatch):
    """Fake celery modules: the control registry, the worker state and find_app, recorded."""
    registry = {}
    ready = []
    found = []

    def control_command(name=None, **_kwargs):
        def register(function):
            registry[name or function.__name__] = function
            return function

        return register

    modules = {
        "celery": types.ModuleType("celery"),
        "celery.worker": types.ModuleType("celery.worker"),
        "celery.worker.control": types.ModuleType("celery.worker.control"),
        "celery.worker.state": types.ModuleType("celery.worker.state"),
        "celery.app": types.ModuleType("celery.app"),
        "celery.app.utils": types.ModuleType("celery.app.utils"),
    }
    modules["celery.worker.control"].control_command = control_command
    modules["celery.worker.state"].task_ready = ready.append
    modules["celery.worker"].state = modules["celery.worker.state"]
    modules["celery.app.utils"].find_app = lambda spec: found.append(spec) or f"app of {spec}"
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return types.SimpleNamespace(registry=registry, ready=ready, found=found)


class Request:
    def __init__(self, task_id, acknowledged=False):
        self.id = task_id
        self.acknowledged = acknowledged
        self.rejected = []

    def reject(self, requeue=False):
        self.rejected.append(requeue)
        self.acknowledged = True


def entry(request):
    """A semaphore waiter as kombu's LaxBoundedSemaphore.acquire stores it: (callback, args, kwargs)."""
    return ("process_task", (request,), {})


def test_outside_celery_nothing_is_registered(monkeypatch):
    monkeypatch.delitem(sys.modules, "celery", raising=False)
    module = load()
    assert module.HAND_BACK_COMMAND == "celeryops_hand_back"


def test_inside_celery_the_command_is_registered(fake_celery):
    module = load()
    assert fake_celery.registry == {"celeryops_hand_back": module.hand_back}


def test_waiting_requests_are_requeued_in_order_and_leave_the_reserved_state():
    module = load()
    first, second = Request("t1"), Request("t2")
    waiting = collections.deque([entry(first), entry(second)])
    ready = []
    assert module.hand_back_waiting(waiting, ready.append) == ["t1", "t2"]
    assert first.rejected == [True]
    assert second.rejected == [True]
    assert ready == [first, second]
    assert not waiting


def test_what_is_not_an_unacknowledged_request_stays_waiting_in_order():
    module = load()
    done = Request("done", acknowledged=True)
    other = ("callback", ("not a request",), {})
    empty = ("callback", (), {})
    fresh = Request("fresh")
    waiting = collections.deque([entry(done), other, entry(fresh), empty])
    same = waiting
    assert module.hand_back_waiting(waiting, lambda request: None) == ["fresh"]
    assert waiting is same
    assert list(waiting) == [entry(done), other, empty]
    assert done.rejected == []


def test_the_command_hands_back_the_semaphore_waiters(fake_celery):
    module = load()
    request = Request("t9")
    waiting = collections.deque([entry(request)])
    semaphore = types.SimpleNamespace(_waiting=waiting)
    state = types.SimpleNamespace(consumer=types.SimpleNamespace(controller=types.SimpleNamespace(semaphore=semaphore)))
    assert module.hand_back(state) == {"ok": "handed back 1", "handed_back": ["t9"]}
    assert fake_celery.ready == [request]
    assert not waiting


@pytest.mark.parametrize(
    "state",
    [
        types.SimpleNamespace(consumer=types.SimpleNamespace(controller=types.SimpleNamespace(semaphore=None))),
        types.SimpleNamespace(consumer=None),
        types.SimpleNamespace(),
    ],
)
def test_a_pool_without_the_semaphore_hands_back_nothing(fake_celery, state):
    module = load()
    assert module.hand_back(state) == {"ok": "this pool holds no waiting tasks", "handed_back": []}


def test_the_cli_app_is_the_worker_app_named_in_the_environment(fake_celery, monkeypatch):
    module = load()
    monkeypatch.setenv("CELERYOPS_APP", "proj.celery:app")
    assert module.app == "app of proj.celery:app"
    assert fake_celery.found == ["proj.celery:app"]


def test_without_the_environment_there_is_no_app(fake_celery, monkeypatch):
    module = load()
    monkeypatch.delenv("CELERYOPS_APP", raising=False)
    with pytest.raises(AttributeError, match="CELERYOPS_APP"):
        module.__getattr__("app")
    with pytest.raises(AttributeError):
        module.__getattr__("other")
