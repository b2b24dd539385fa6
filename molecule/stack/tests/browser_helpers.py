"""Helpers of the browser test (test_browser.py): the lab as the inventory declares it, the containers' addresses,
and headless Chromium (Debian's package) driven by Playwright for Python.

Playwright downloads no browser here: it launches the `chromium` that lab/browser.sh installs with apt. The browser
may reach the lab's containers only: every other host name or address fails to resolve inside Chromium
(`--host-resolver-rules`), no proxy is used, and every request the pages make is recorded so the test can check
where they went.
"""

import json
import os
import shutil
import subprocess
from urllib.parse import urlsplit

import pytest
import yaml
from stack_helpers import PROJECT, ansible_env

# Where the screenshots go: CELERYOPS_SCREENSHOTS_DIR (`make screenshots` sets docs/screenshots), else
# build/screenshots/<LAB_RELEASE> (the releases' runs go side by side).
SCREENSHOTS_ENV = "CELERYOPS_SCREENSHOTS_DIR"
DEFAULT_SCREENSHOTS = PROJECT / "build" / "screenshots"
WORKERS_DEFAULTS = PROJECT / "roles" / "workers" / "defaults" / "main.yml"

# The module of Celery's pool class that each --pool value loads (celery.concurrency.get_implementation).
POOL_MODULES = {
    "prefork": "prefork",
    "processes": "prefork",
    "eventlet": "eventlet",
    "gevent": "gevent",
    "threads": "thread",
    "solo": "solo",
}


class Secret(str):
    """A secret string that never shows in pytest's failure reports."""

    def __repr__(self):
        return "'<secret>'"


def read_secret(path):
    return Secret(path.read_text().strip())


def screenshots_dir():
    path = os.environ.get(SCREENSHOTS_ENV) or str(DEFAULT_SCREENSHOTS / os.environ.get("LAB_RELEASE", "lab"))
    os.makedirs(path, exist_ok=True)
    return path


# -- The inventory ---------------------------------------------------------------------------------------------


def inventory_list(inventory):
    """`ansible-inventory --list` of ``inventory``: groups and every host's variables."""
    out = subprocess.run(
        ["ansible-inventory", "-i", str(inventory), "--list"],
        cwd=PROJECT, env=ansible_env(), capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return json.loads(out)


def group_hosts(listing, group):
    """The hosts of ``group`` and of its children, in inventory order, each once."""
    hosts = []
    entry = listing.get(group, {})
    for name in entry.get("hosts", []):
        if name not in hosts:
            hosts.append(name)
    for child in entry.get("children", []):
        hosts += [name for name in group_hosts(listing, child) if name not in hosts]
    return hosts


def host_vars(listing, host):
    return listing.get("_meta", {}).get("hostvars", {}).get(host, {})


def declared_workers(listing):
    """Every Celery worker the inventory declares on the `workers` group, with what Flower should show of it.

    Node names as the workers role sets them (`--hostname=<first queue>.%h`; the lab's hosts are named as in the
    inventory); pool and concurrency from the worker, else the host's workers_default_*, else the role's
    defaults. An autoscaled worker's maximum is its pool's max-concurrency."""
    defaults = yaml.safe_load(WORKERS_DEFAULTS.read_text())
    workers = []
    for host in group_hosts(listing, "workers"):
        variables = host_vars(listing, host)
        for worker in variables.get("workers_celery_workers", []):
            pool = worker.get("pool", variables.get("workers_default_pool", defaults["workers_default_pool"]))
            if "autoscale" in worker:
                concurrency = int(str(worker["autoscale"]).split(",", maxsplit=1)[0])
            else:
                concurrency = int(
                    worker.get(
                        "concurrency",
                        variables.get("workers_default_concurrency", defaults["workers_default_concurrency"]),
                    )
                )
            workers.append(
                {
                    "host": host,
                    "name": worker["name"],
                    "node": f"celery@{worker['queues'][0]}.{host}",
                    "queues": list(worker["queues"]),
                    "pool": pool,
                    "concurrency": concurrency,
                }
            )
    return workers


def container_address(listing, host):
    """The IPv4 address of ``host``'s container on its Docker network (the container is the host's
    ansible_host, else the inventory name)."""
    container = host_vars(listing, host).get("ansible_host", host)
    out = subprocess.run(
        ["docker", "inspect", "--format", "{{json .NetworkSettings.Networks}}", container],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, f"docker inspect {container}: {out.stderr.strip()}"
    addresses = [network.get("IPAddress") for network in json.loads(out.stdout).values()]
    addresses = [address for address in addresses if address]
    assert addresses, f"container {container} has no address on a Docker network"
    return addresses[0]


# -- The browser -----------------------------------------------------------------------------------------------


def chromium_path():
    """Debian's chromium (installed by lab/browser.sh, which `make test` and `make lab` run)."""
    path = shutil.which("chromium")
    if not path:
        pytest.fail("Debian's chromium is missing: run lab/browser.sh (as root it installs it with apt)")
    return path


def launch_options(allowed_addresses):
    """Playwright's launch options: Debian's chromium, headless, and a network limited to ``allowed_addresses``."""
    rules = ", ".join(["MAP * ~NOTFOUND"] + [f"EXCLUDE {address}" for address in allowed_addresses])
    return {
        "executable_path": chromium_path(),
        "headless": True,
        # Chromium's sandbox cannot start as root and Chromium refuses to run as root with it, so only a root run
        # (CI and the lab scripts run as root) goes without it: chromium_sandbox=False makes Playwright pass
        # --no-sandbox. Any other user keeps the sandbox.
        "chromium_sandbox": os.geteuid() != 0,
        "args": [
            # The lab's addresses only: every other name or address fails to resolve inside the browser, which
            # also silences Chromium's own background requests. No proxy from the environment either.
            f"--host-resolver-rules={rules}",
            "--no-proxy-server",
            # Containers and CI machines often have a small /dev/shm.
            "--disable-dev-shm-usage",
        ],
    }


def new_context(browser, requests, **options):
    """A browser context of 1280x800 that appends the host:port of every request its pages make to
    ``requests``. The pages are reached by container address, which the lab CA's certificates do not name, and
    Chromium has no way to trust that CA here: the context accepts their certificates (test_tls.py verifies them,
    by name, against the lab CA)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, ignore_https_errors=True, **options)
    context.set_default_timeout(30_000)
    context.set_default_navigation_timeout(30_000)
    context.on("request", lambda request: requests.append(urlsplit(request.url).netloc))
    return context


def visited_hosts(requests):
    """The host parts of the recorded ``requests`` (data: and about: URLs have none)."""
    return {netloc.rsplit(":", 1)[0] for netloc in requests if netloc}
