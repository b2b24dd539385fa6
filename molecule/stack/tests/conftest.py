"""Fixtures shared by the stack's tests: the lab's hosts by role, and the controller's credentials.

The same tests run under molecule (inventory from MOLECULE_INVENTORY_FILE) and against a `make lab` lab
(`pytest --ansible-inventory=inventories/lab molecule/stack/tests`, or LAB_INVENTORY).
"""

import os
import pathlib

import pytest
import testinfra

PROJECT = pathlib.Path(__file__).resolve().parents[3]

# The reliability rows: the marker, the `observe` fixture and the session's rows (imported: pytest finds them here).
import reliability_hooks  # noqa: E402  (found through the path above)

observe = reliability_hooks.observe
pytest_configure = reliability_hooks.pytest_configure
pytest_runtest_makereport = reliability_hooks.pytest_runtest_makereport
pytest_sessionfinish = reliability_hooks.pytest_sessionfinish


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
