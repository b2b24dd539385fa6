"""Fixtures of the cluster scenario: its three brokers, two app hosts and monitoring host, and the controller's
credentials.

The stack scenario's helpers (molecule/stack/tests) serve here too: they are found through the path below.
"""

import os
import pathlib
import sys

import pytest
import testinfra

PROJECT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(PROJECT / "molecule" / "stack" / "tests"))

# The reliability rows (docs/reliability.md, with the stack scenario's of the same release).
import reliability_hooks  # noqa: E402  (found through the path above)
from cluster_helpers import BROKERS  # noqa: E402  (found through the path above)

observe = reliability_hooks.observe
pytest_configure = reliability_hooks.pytest_configure
pytest_runtest_makereport = reliability_hooks.pytest_runtest_makereport
pytest_sessionfinish = reliability_hooks.pytest_sessionfinish


@pytest.fixture(scope="session")
def inventory():
    path = os.environ.get("MOLECULE_INVENTORY_FILE")
    assert path, "the cluster tests run under molecule (lab/molecule.sh RELEASE test -s cluster)"
    return path


@pytest.fixture(scope="session")
def credentials_dir(inventory):
    """Where the roles keep generated secrets on the controller: <inventory dir>/credentials."""
    return pathlib.Path(inventory).parent / "credentials"


def _get(inventory, name):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={inventory}")


@pytest.fixture(scope="session")
def brokers(inventory):
    return {name: _get(inventory, name) for name in BROKERS}


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
def vhost(brokers):
    return brokers["broker1"].ansible.get_variables().get("celeryops_broker_vhost", "celery")


@pytest.fixture(scope="session")
def admin_auth(brokers, credentials_dir):
    """``user:password`` of the broker's admin user (its password from the controller's credentials)."""
    name = brokers["broker1"].ansible.get_variables().get("rabbitmq_admin_user", "admin")
    return f"{name}:{(credentials_dir / f'rabbitmq_{name}.password').read_text().strip()}"
