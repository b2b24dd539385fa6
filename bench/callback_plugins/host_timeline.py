"""Callback of the benchmarks: one JSON line per task and host, with its start and end time.

profile_tasks measures a task from its first host's start to the next task's start, which says little when
hosts run at their own pace (strategy free). This one records each host's own tasks, so the slowest host's
path through the play can be read back: bench/converge_helper.py turns it into a table.

Enabled by bench/converge_bench.sh through ANSIBLE_CALLBACK_PLUGINS and ANSIBLE_CALLBACKS_ENABLED; the
output file is HOST_TIMELINE_FILE.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: host_timeline
type: aggregate
short_description: write each host's task start and end times as JSON lines
description:
  - One line per task result, with the host, the task, its status and its start and end times.
options: {}
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "host_timeline"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._starts = {}
        path = os.environ.get("HOST_TIMELINE_FILE")
        self._out = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115 (kept for the run)

    def _key(self, host, task):
        return (host.get_name(), task._uuid)

    def v2_runner_on_start(self, host, task):
        self._starts[self._key(host, task)] = time.time()

    def _record(self, result, status):
        if self._out is None:
            return
        end = time.time()
        host, task = result._host, result._task
        start = self._starts.pop(self._key(host, task), end)
        line = {
            "host": host.get_name(),
            "task": task.get_name(),
            "action": task.action,
            "status": status,
            "start": start,
            "end": end,
        }
        self._out.write(json.dumps(line) + "\n")
        self._out.flush()

    def v2_runner_on_ok(self, result):
        self._record(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")
