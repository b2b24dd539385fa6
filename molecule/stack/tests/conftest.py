"""Fixtures shared by the stack's tests: the lab's hosts by role, and the controller's credentials.

The same tests run under molecule (inventory from MOLECULE_INVENTORY_FILE) and against a `make lab` lab
(`pytest --ansible-inventory=inventories/lab molecule/stack/tests`, or LAB_INVENTORY).
"""

import os
import pathlib
import sys

import pytest
import testinfra

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


def _inventory(request):
    return (
        os.environ.get("MOLECULE_INVENTORY_FILE")
        or request.config.getoption("ansible_inventory", None)
        or os.environ.get("LAB_INVENTORY")
        or str(PROJECT / "inventories" / "lab")
    )


@pytest.fixture(scope="session")
def inventory(request):
    return _inventory(request)


@pytest.fixture(scope="session")
def credentials_dir(inventory):
    """Where the roles keep generated secrets on the controller: <inventory dir>/credentials."""
    path = pathlib.Path(inventory)
    base = path if path.is_dir() else path.parent
    return base / "credentials"


def _get(inventory, name):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={inventory}")


@pytest.fixture(scope="session")
def broker(inventory):
    return _get(inventory, "broker")


@pytest.fixture(scope="session")
def app1(inventory):
    return _get(inventory, "app1")


@pytest.fixture(scope="session")
def app2(inventory):
    return _get(inventory, "app2")


@pytest.fixture(scope="session")
def monitor(inventory):
    return _get(inventory, "monitor")


@pytest.fixture(scope="session")
def flower_auth(credentials_dir):
    """Flower's basic auth as "user:password", from <credentials>/flower_<user>.password."""
    files = sorted(credentials_dir.glob("flower_*.password"))
    assert files, f"no flower_<user>.password in {credentials_dir}"
    user = files[0].name[len("flower_") : -len(".password")]
    return f"{user}:{files[0].read_text().strip()}"
