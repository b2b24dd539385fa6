"""The rows of docs/reliability.md, recorded by the test sessions that prove them.

A row is one fault or one operator mistake: the case, what must happen, what the test observed, and whether it
passed. Each pytest session that has rows appends them, as JSON lines, to ``<suite>.jsonl`` in the directory
named by CELERYOPS_RELIABILITY_DIR (``make test`` sets it; without it nothing is written), and
``hacking/reliability_report.py`` turns that directory into the report.
"""

from __future__ import annotations

import json
import os
import pathlib

ENV = "CELERYOPS_RELIABILITY_DIR"


def row(case, expected, observed, passed):
    return {"case": case, "expected": expected, "observed": observed, "passed": bool(passed)}


def failure_text(report):
    """The first line of a failed test's assertion message, or its outcome."""
    text = getattr(report, "longreprtext", "") or ""
    for line in text.splitlines():
        if line.startswith("E "):
            return line[1:].strip()[:300]
    return report.outcome


def append(suite, rows):
    """Append ``rows`` to ``<dir>/<suite>.jsonl`` when CELERYOPS_RELIABILITY_DIR is set; the path, or None."""
    directory = os.environ.get(ENV)
    if not directory or not rows:
        return None
    path = pathlib.Path(directory) / f"{suite}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        for item in rows:
            handle.write(json.dumps(item, sort_keys=True) + "\n")
    return path
