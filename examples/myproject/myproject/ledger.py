"""Completion ledger: one JSON line per finished task, per worker node, for exactly-once checks."""

import json
import os
import pathlib
import time

DEFAULT_LEDGER_DIR = "/var/lib/celery/ledger"


def record(task_id, node):
    """Append ``{"id", "node", "ts"}`` to ``<ledger dir>/<node>.jsonl`` (CELERYOPS_LEDGER_DIR overrides the dir)."""
    directory = pathlib.Path(os.environ.get("CELERYOPS_LEDGER_DIR", DEFAULT_LEDGER_DIR))
    directory.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"id": task_id, "node": node, "ts": time.time()}) + "\n"
    # One write call per line on a file opened for appending keeps lines whole between processes.
    with open(directory / f"{node}.jsonl", "a", encoding="utf-8") as ledger:
        ledger.write(line)
        ledger.flush()
