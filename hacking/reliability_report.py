"""Write docs/reliability.md from the rows the test sessions recorded (tests/reliability_rows.py).

    python hacking/reliability_report.py ROWS_DIR OUTPUT

ROWS_DIR holds ``faults-<release>.jsonl`` (the stack and cluster scenarios, one per Debian release) and
``mistakes.jsonl`` (the preflight tests). Exits 1, after writing the report, when a row failed or when a part is
missing.
"""

from __future__ import annotations

import json
import pathlib
import sys

RELEASES = {"bookworm": "Debian 12", "trixie": "Debian 13"}


def read_rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(rows):
    lines = ["| case | expected | observed | result |", "|---|---|---|---|"]
    for row in rows:
        result = "pass" if row["passed"] else "**FAIL**"
        lines.append(f"| {cell(row['case'])} | {cell(row['expected'])} | {cell(row['observed'])} | {result} |")
    return lines


def render(parts):
    """The report's Markdown from ``{file stem: rows}``."""
    rows = [row for part in parts.values() for row in part]
    failed = sum(not row["passed"] for row in rows)
    lines = [
        "# Reliability report",
        "",
        "Written by `make test` (`hacking/reliability_report.py`) from the rows its test sessions recorded: the faults",
        "the stack and cluster scenarios inflict on a converged lab under load, the requests it must refuse and the",
        "secrets it must not leak, on each Debian release; and the operator mistakes the preflight tests try against",
        "each role.",
        "Every row is a test; `make test` fails when one fails.",
        "",
        f"{len(rows)} rows, {failed} failed.",
    ]
    for stem in sorted(parts):
        if not stem.startswith("faults-"):
            continue
        release = stem.removeprefix("faults-")
        title = f"## On the lab, {RELEASES.get(release, release)}: faults under load, refusals, secrets"
        lines += ["", title, "", *table(parts[stem])]
    if "mistakes" in parts:
        lines += [
            "",
            "## Operator mistakes",
            "",
            "Each role run on the controller's localhost in check mode with one mistake (the case names the role",
            "and the mistake); the play must stop in the role's argument validation or preflight, report",
            "changed=0, never reach the first task that changes the host, and name the variable.",
            "",
            *table(parts["mistakes"]),
        ]
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    directory, output = pathlib.Path(argv[1]), pathlib.Path(argv[2])
    parts = {path.stem: read_rows(path) for path in sorted(directory.glob("*.jsonl"))}
    output.write_text(render(parts), encoding="utf-8")
    problems = [f"{row['case']}: {row['observed']}" for part in parts.values() for row in part if not row["passed"]]
    if "mistakes" not in parts or not any(stem.startswith("faults-") for stem in parts):
        problems.append(f"{directory} lacks the faults or the mistakes rows (found: {', '.join(parts) or 'none'})")
    for problem in problems:
        print(f"reliability: {problem}", file=sys.stderr)
    print(f"wrote {output}: {sum(len(part) for part in parts.values())} rows")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
