"""The rows of docs/reliability.md that a molecule scenario's tests prove: tests marked ``reliability(case,
expected)`` tell what they saw with the ``observe`` fixture, and the session appends one row per test to
``faults-<LAB_RELEASE>`` (tests/reliability_rows.py). A scenario's conftest imports these hooks and the fixture."""

import os
import pathlib
import sys

import pytest

PROJECT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(PROJECT / "tests"))

import reliability_rows  # noqa: E402  (found through the path above)

# The rows of docs/reliability.md this session proves (tests marked `reliability`), in the order they ran.
_ROWS = []


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "reliability(case, expected): a fault row of docs/reliability.md; the test tells what it saw with the "
        "`observe` fixture",
    )


@pytest.fixture
def observe(request):
    """``observe(text)``: what the test saw, for its row of docs/reliability.md (the last call wins)."""

    def record(text):
        request.node.reliability_observed = str(text)

    return record


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("reliability")
    # One row per test: from its call, or from its setup when that failed (the call never ran then).
    if marker is None or not (report.when == "call" or (report.when == "setup" and report.failed)):
        return
    case, expected = marker.args
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        case = f"{case} ({callspec.id})"
    if report.passed:
        observed = getattr(item, "reliability_observed", "") or "as expected (asserted by the test)"
    else:
        observed = reliability_rows.failure_text(report)
    _ROWS.append(reliability_rows.row(case, expected, observed, report.passed))


def pytest_sessionfinish(session):
    release = os.environ.get("LAB_RELEASE", "lab")
    reliability_rows.append(f"faults-{release}", _ROWS)
