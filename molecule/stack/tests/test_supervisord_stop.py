"""systemd's stop of supervisord waits for the workers' warm shutdown, and nothing outlives it.

Debian's unit for supervisord waits 90 seconds, then SIGKILLs supervisord alone (KillMode=process): a worker in a
longer warm shutdown is left running without a supervisor, next to the new one. The supervisor role's drop-in
makes systemd wait supervisor_systemd_stop_timeout, kill the whole unit after it, and raises the open-file limit
of supervisord and of the programs it starts.
"""

import time

import pytest
from stack_helpers import LEDGER_DIR, active_ids, ledger_entries, running_pid, send_tasks, wait_new_pid

DEFAULT_NODE = "celery@celery.app2"
# Longer than the 90 seconds Debian's unit would wait.
LONG_TASK_SECONDS = 100


def unit_property(host, name):
    return host.run("systemctl show supervisor --property=%s --value", name).stdout.strip()


def open_files_limit(host, pid):
    """(soft, hard) open-file limit of a process."""
    line = next(row for row in host.file(f"/proc/{pid}/limits").content_string.splitlines() if "open files" in row)
    soft, hard = line.split()[3:5]
    return int(soft), int(hard)


def test_systemd_waits_long_and_stops_the_whole_unit(app1, app2):
    for host in (app1, app2):
        assert unit_property(host, "TimeoutStopUSec") == "1h"
        assert unit_property(host, "KillMode") == "mixed"


def test_workers_get_the_raised_open_file_limit(app1, app2):
    """65536, or the most the host allows (a container may cap it): never Debian's soft 1024."""
    for host, program in ((app1, "celery-customers"), (app2, "celery-default")):
        _init_soft, init_hard = open_files_limit(host, 1)
        soft, _hard = open_files_limit(host, running_pid(host, program))
        assert soft == min(65536, init_hard) > 1024, (program, soft, init_hard)


@pytest.mark.reliability(
    f"systemctl restart supervisor while a {LONG_TASK_SECONDS} s task runs (Debian's unit would wait 90 s)",
    "the restart returns once the task has finished on the old worker; nothing of it is left; the task ran once",
)
def test_a_restart_of_supervisord_lets_a_long_task_finish_first(app2, observe):
    """A task longer than Debian's 90 s stop timeout runs when supervisord restarts: the restart returns only once
    the old worker has finished it and exited; the task is in the ledger once; a new worker runs."""
    old_pid = running_pid(app2, "celery-default")
    [task_id] = send_tasks(app2, [[LONG_TASK_SECONDS, "celery"]])
    deadline = time.monotonic() + 60
    while task_id not in active_ids(app2, DEFAULT_NODE):
        assert time.monotonic() < deadline, f"task {task_id} never became active on {DEFAULT_NODE}"
        time.sleep(1)
    children = app2.run("ps -o pid= --ppid %s", str(old_pid)).stdout.split()
    assert children

    began = float(app2.run("date +%s.%N").stdout)
    restart = app2.run("systemctl restart supervisor")
    returned = float(app2.run("date +%s.%N").stdout)
    assert restart.rc == 0, restart.stderr

    # Nothing of the old worker outlived the stop: neither its main process nor its pool.
    for pid in [str(old_pid), *children]:
        assert not app2.file(f"/proc/{pid}").exists, f"process {pid} of the old worker still runs"
    entries = [entry for entry in ledger_entries(app2, DEFAULT_NODE) if entry["id"] == task_id]
    assert len(entries) == 1, entries
    assert entries[0]["ts"] <= returned, "the task finished after the restart returned"

    new_pid = wait_new_pid(app2, "celery-default", old_pid)
    # Every process of the worker account descends from the new supervisord: no worker was left unsupervised.
    supervisord = app2.run("systemctl show supervisor --property=MainPID --value").stdout.strip()
    parents = dict(line.split() for line in app2.run("ps -o pid=,ppid= -u celery").stdout.splitlines())
    assert str(new_pid) in parents, parents
    for pid in parents:
        ancestor = pid
        while ancestor in parents:
            ancestor = parents[ancestor]
        assert ancestor == supervisord, f"process {pid} of the worker account does not descend from supervisord"
    log = app2.file("/var/log/celery/celery-default.log").content_string
    assert "WorkerLostError" not in log[-20000:]
    assert app2.run("ls %s", LEDGER_DIR).rc == 0
    observe(
        f"restart took {returned - began:.0f} s; the task ended {returned - entries[0]['ts']:.1f} s before it "
        f"returned; old main process and {len(children)} pool processes gone; new worker pid {new_pid}"
    )
