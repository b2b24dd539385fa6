"""Completion ledger: one JSON line per finished task, per worker node, for exactly-once checks."""

import json
import os
import pathlib
import time

DEFAULT_LEDGER_DIR = "/var/lib/celery/ledger"
# When this worker process imported the task code (a prefork pool's children inherit it from the main process):
# a task ran on code deployed at time T when its entry's ``loaded`` is later than T.
LOADED = time.time()


def record(task_id, node, started=None, redelivered=False):
    """Append ``{"id", "node", "ts", "loaded"}`` to ``<ledger dir>/<node>.jsonl`` (CELERYOPS_LEDGER_DIR overrides
    the dir).

    ``ts`` is when the task ended; ``start``, when given, when its body began; ``loaded``, when the worker process
    imported the code (all ``time.time()``); ``redelivered`` is there (true) when the broker delivered the message
    again (its first delivery was never acknowledged).
    """
    directory = pathlib.Path(os.environ.get("CELERYOPS_LEDGER_DIR", DEFAULT_LEDGER_DIR))
    directory.mkdir(parents=True, exist_ok=True)
    entry = {"id": task_id, "node": node, "ts": time.time(), "loaded": LOADED}
    if started is not None:
        entry["start"] = started
    if redelivered:
        entry["redelivered"] = True
    line = json.dumps(entry) + "\n"
    # One write call per line on a file opened for appending keeps lines whole between processes.
    with open(directory / f"{node}.jsonl", "a", encoding="utf-8") as ledger:
        ledger.write(line)
        ledger.flush()
