"""The operator-mistake rows of docs/reliability.md: every refusal test of this directory is one.

A refusal test runs a role (or site.yml) with one mistake and asserts that the play fails before any change and
that the output names the variable. Its row says which role, which mistake (the test's parameter id), and what
the test observed. The tests that check a good input passes are not rows.
"""

import pathlib
import re
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import reliability_rows  # noqa: E402  (found through the path above)

_ROWS = []
EXPECTED = "refused before any change, with a message naming the variable"
# The tests that must refuse their input (the others prove that good input passes).
_REFUSAL = re.compile(r"(bad|refuse|fails)")
_ROLE = re.compile(r"test_(\w+?)_(preflight|argument_specs)\.py$")


def _case(item):
    match = _ROLE.search(item.fspath.basename)
    role = match.group(1) if match else item.fspath.basename
    callspec = getattr(item, "callspec", None)
    what = callspec.id if callspec is not None else item.originalname.removeprefix("test_").replace("_", " ")
    return f"{role}: {what}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not _REFUSAL.search(item.originalname):
        return
    if report.when == "call" or (report.when == "setup" and report.failed):
        if report.passed:
            observed = "refused before any change, variable named"
        else:
            observed = reliability_rows.failure_text(report)
        _ROWS.append(reliability_rows.row(_case(item), EXPECTED, observed, report.passed))


def pytest_sessionfinish(session):
    reliability_rows.append("mistakes", _ROWS)
