"""Flower and the RabbitMQ management UI in a real browser: Debian's headless Chromium driven by Playwright.

From the controller, at the containers' addresses on the lab's Docker network: Flower (basic auth) lists every
worker the inventory declares as online, and each worker's page shows the pool and concurrency the inventory
gives it; the management API refuses a request without credentials and the UI shows its login form; the
monitoring user logs in through that form and the Queues page lists the application vhost's queues. The browser
contacts the lab's containers only. Screenshots of the Flower dashboard, a Flower worker page and the Queues
page go to CELERYOPS_SCREENSHOTS_DIR (default build/screenshots/<LAB_RELEASE>; `make screenshots` writes
docs/screenshots).

Workers may be restarted by someone else while this runs (a converge, a rolling restart): every wait polls the
page until what it expects shows, within a bounded time.
"""

import os
import time
from urllib.parse import quote

import pytest
from browser_helpers import (
    POOL_MODULES,
    container_address,
    declared_workers,
    group_hosts,
    host_vars,
    inventory_list,
    launch_options,
    new_context,
    read_secret,
    screenshots_dir,
    visited_hosts,
)
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

ONLINE_TIMEOUT = 180  # seconds for every declared worker to show online (a restart of all of them fits)
PAGE_TIMEOUT = 120  # seconds for a worker's page or the Queues page to show what is expected
RELOAD_EVERY = 15  # seconds between reloads of a page that refreshes itself but shows stale data


@pytest.fixture(scope="module")
def listing(inventory):
    return inventory_list(inventory)


@pytest.fixture(scope="module")
def workers(listing):
    declared = declared_workers(listing)
    assert declared, "the inventory declares no worker on the workers group"
    return declared


@pytest.fixture(scope="module")
def flower(listing, credentials_dir):
    """Flower's URL on the first host of the `flower` group, and its basic auth credentials."""
    hosts = group_hosts(listing, "flower")
    assert hosts, "no host in the flower group"
    variables = host_vars(listing, hosts[0])
    prefix = str(variables.get("flower_url_prefix", "")).strip("/")
    address = container_address(listing, hosts[0])
    user = variables.get("flower_basic_auth_user", "admin")
    return {
        "address": address,
        "url": f"https://{address}:{int(variables.get('flower_port', 5555))}" + (f"/{prefix}" if prefix else ""),
        "user": user,
        "password": read_secret(credentials_dir / f"flower_{user}.password"),
    }


@pytest.fixture(scope="module")
def management(listing, credentials_dir):
    """The management UI's URL on the first host of the `rabbitmq` group, the vhost and the monitoring user."""
    hosts = group_hosts(listing, "rabbitmq")
    assert hosts, "no host in the rabbitmq group"
    variables = host_vars(listing, hosts[0])
    address = container_address(listing, hosts[0])
    # The role's own variable, else the broker contract (group_vars/all), else the roles' defaults.
    user = variables.get("rabbitmq_monitoring_user", variables.get("celeryops_broker_monitoring_user", "monitoring"))
    return {
        "address": address,
        "url": f"https://{address}:{int(variables.get('rabbitmq_management_tls_port', 15671))}",
        "vhost": variables.get("rabbitmq_app_vhost", variables.get("celeryops_broker_vhost", "celery")),
        "user": user,
        "password": read_secret(credentials_dir / f"rabbitmq_{user}.password"),
    }


@pytest.fixture(scope="module")
def requests():
    """host:port of every request the test's pages made."""
    return []


@pytest.fixture(scope="module")
def browser(flower, management):
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(**launch_options([flower["address"], management["address"]]))
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def flower_page(browser, flower, requests):
    """A page of a context that answers Flower's basic auth challenge."""
    context = new_context(
        browser, requests, http_credentials={"username": flower["user"], "password": flower["password"]}
    )
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def shots():
    return screenshots_dir()


def goto(page, url):
    """Open ``url``: (response, None), or (None, the browser's error) while the server does not answer (it may be
    restarting) or refuses the credentials."""
    try:
        return page.goto(url, wait_until="load"), None
    except PlaywrightError as error:
        return None, str(error).splitlines()[0]


def dashboard_status(page):
    """{worker name: status text} of the rows Flower's dashboard shows (the name cell may break a long name
    over lines: node names have no white space)."""
    rows = page.eval_on_selector_all(
        "#workers-table tbody tr",
        "rows => rows.map(row => Array.from(row.cells).map(cell => cell.textContent.trim()))",
    )
    return {"".join(cells[0].split()): cells[1] for cells in rows if len(cells) > 1}


def test_flower_dashboard_lists_every_declared_worker_online(flower_page, flower, workers, shots):
    nodes = sorted(worker["node"] for worker in workers)
    page, status, loaded, error = flower_page, {}, 0.0, None
    deadline = time.monotonic() + ONLINE_TIMEOUT
    while time.monotonic() < deadline:
        # The dashboard reloads its table every second; a reload of the page now and then gets past a Flower that
        # was restarted under it.
        if time.monotonic() - loaded > RELOAD_EVERY:
            response, error = goto(page, flower["url"] + "/")
            loaded = time.monotonic()
            if response is not None and response.status != 200:
                error = f"HTTP {response.status}"
        try:
            status = dashboard_status(page)
        except PlaywrightError:
            status = {}
        if all(status.get(node) == "Online" for node in nodes):
            break
        time.sleep(1)
    offline = [node for node in nodes if status.get(node) != "Online"]
    assert not offline, (
        f"not online on Flower's dashboard after {ONLINE_TIMEOUT} s: {offline}; rows: {status}; last load: {error}"
    )
    page.screenshot(path=os.path.join(shots, "flower-dashboard.png"), full_page=True)


def pool_options(page):
    """The rows of the worker page's "Worker pool options" table: {label: value}."""
    rows = page.eval_on_selector_all(
        "#tab-pool table tbody tr",
        "rows => rows.map(row => Array.from(row.cells).map(cell => cell.innerText.trim()))",
    )
    return {cells[0]: cells[1] for cells in rows if len(cells) > 1}


def test_flower_worker_pages_show_pool_and_concurrency_of_the_inventory(flower_page, flower, workers, shots):
    """Every declared worker's page (Flower asks the worker itself); a screenshot of the first one."""
    page = flower_page
    for index, worker in enumerate(workers):
        url = f"{flower['url']}/worker/{quote(worker['node'], safe='@')}"
        expected = {
            "Implementation": f"celery.concurrency.{POOL_MODULES.get(worker['pool'], worker['pool'])}:taskpool",
            "Max concurrency": str(worker["concurrency"]),
        }
        seen, error = {}, None
        deadline = time.monotonic() + PAGE_TIMEOUT
        while time.monotonic() < deadline:
            # A worker that is restarting does not answer Flower's inspect: its page is a 404 until it is back.
            response, error = goto(page, url)
            if response is not None and response.status != 200:
                error = f"HTTP {response.status}"
            elif response is not None:
                options = pool_options(page)
                seen = {
                    "Implementation": options.get("Implementation", "").lower(),
                    "Max concurrency": options.get("Max concurrency", ""),
                }
                if seen == expected:
                    break
            time.sleep(2)
        assert seen == expected, (
            f"{worker['node']} ({worker['host']}, worker {worker['name']}): page shows {seen}, expected {expected}; "
            f"last load: {error}"
        )
        assert page.locator("#workername").inner_text().strip() == worker["node"]
        if index == 0:
            page.screenshot(path=os.path.join(shots, "flower-worker.png"), full_page=True)


@pytest.fixture(scope="module")
def management_page(browser, requests):
    """A page of a context without any credentials: it logs in through the UI's own form."""
    context = new_context(browser, requests)
    yield context.new_page()
    context.close()


def test_management_api_refuses_requests_without_credentials_and_ui_shows_login(management_page, management):
    page = management_page
    response = page.goto(management["url"] + "/")
    assert response is not None
    assert response.status == 200
    # From the UI's own origin, as its scripts ask; credentials "omit" so the browser shows no password prompt.
    status = page.evaluate("async () => (await fetch('api/overview', {credentials: 'omit'})).status")
    assert status == 401
    form = page.locator("#login form")
    form.locator("input[name=username]").wait_for(state="visible")
    assert form.locator("input[name=password]").get_attribute("type") == "password"
    assert form.locator("input[type=submit]").get_attribute("value") == "Login"


def test_monitoring_user_logs_in_through_the_form_and_sees_the_vhost_queues(
    management_page, management, workers, shots
):
    page = management_page
    queues = sorted({queue for worker in workers for queue in worker["queues"]})
    if not page.locator("#login form").is_visible():
        page.goto(management["url"] + "/")
    form = page.locator("#login form")
    form.locator("input[name=username]").fill(management["user"])
    form.locator("input[name=password]").fill(management["password"])
    form.locator("input[type=submit]").click()
    # Logged in: the tabs of the UI replace the form (the Queues tab is "Queues" or "Queues and Streams").
    page.locator('#tabs a[href="#/queues"]').click(timeout=PAGE_TIMEOUT * 1000)
    vhost = quote(management["vhost"], safe="")
    links = {queue: page.locator(f'a[href="#/queues/{vhost}/{quote(queue, safe="")}"]') for queue in queues}
    deadline = time.monotonic() + PAGE_TIMEOUT
    missing = queues
    while time.monotonic() < deadline:
        missing = [queue for queue, link in links.items() if link.count() == 0]
        if not missing:
            break
        time.sleep(2)  # the page refreshes itself every 5 s
    assert not missing, f"queues of vhost {management['vhost']} missing on the Queues page: {missing}"
    for link in links.values():
        assert link.first.is_visible()
    page.screenshot(path=os.path.join(shots, "rabbitmq-queues.png"), full_page=True)


def test_browser_contacted_only_the_lab(requests, flower, management):
    hosts = visited_hosts(requests)
    if not hosts:
        pytest.skip("no page of this module was opened in this run")
    assert hosts <= {flower["address"], management["address"]}, sorted(hosts)
