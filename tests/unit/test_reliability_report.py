"""hacking/reliability_report.py: the report shows every row, and fails on a failed row or a missing part."""

import json
import pathlib
import subprocess
import sys

PROJECT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = PROJECT / "hacking" / "reliability_report.py"


def write_rows(directory, stem, rows):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{stem}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def row(case, passed=True):
    return {"case": case, "expected": "e | x", "observed": "o", "passed": passed}


def run(directory, output):
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(directory), str(output)], capture_output=True, text=True, check=False
    )


def test_every_row_is_in_the_report(tmp_path):
    rows = tmp_path / "rows"
    write_rows(rows, "faults-bookworm", [row("kill -9 a worker")])
    write_rows(rows, "faults-trixie", [row("kill -9 a worker")])
    write_rows(rows, "mistakes", [row("workers: home in /var/lib"), row("flower: port 0")])
    result = run(rows, tmp_path / "report.md")
    report = (tmp_path / "report.md").read_text()
    assert result.returncode == 0, result.stderr
    assert "4 rows, 0 failed." in report
    assert "## On the lab, Debian 12: faults under load, refusals, secrets" in report
    assert "## On the lab, Debian 13: faults under load, refusals, secrets" in report
    assert "| workers: home in /var/lib | e \\| x | o | pass |" in report
    assert "FAIL" not in report


def test_a_failed_row_fails_the_report(tmp_path):
    rows = tmp_path / "rows"
    write_rows(rows, "faults-bookworm", [row("kill -9 a worker", passed=False)])
    write_rows(rows, "mistakes", [row("flower: port 0")])
    result = run(rows, tmp_path / "report.md")
    assert result.returncode == 1
    assert "kill -9 a worker" in result.stderr
    assert "| kill -9 a worker | e \\| x | o | **FAIL** |" in (tmp_path / "report.md").read_text()


def test_a_missing_part_fails_the_report(tmp_path):
    rows = tmp_path / "rows"
    write_rows(rows, "mistakes", [row("flower: port 0")])
    result = run(rows, tmp_path / "report.md")
    assert result.returncode == 1
    assert "lacks the faults or the mistakes rows" in result.stderr
