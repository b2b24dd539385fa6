"""Prometheus and Alertmanager on the lab's host `monitor`, as the tests read them: their HTTP APIs on the host's
loopback (where the monitoring role binds them), queried from the host itself."""

import json
import time

from stack_helpers import http_from

PROMETHEUS = "http://127.0.0.1:9090"
ALERTMANAGER = "http://127.0.0.1:9093"


def api(monitor, url):
    """The JSON body of a GET on ``url`` (an API of the monitoring host), failing on any other status than 200."""
    answer = http_from(monitor, url)
    assert answer["status"] == 200, f"{url}: {answer}"
    return json.loads(answer["body"])


def _active_targets(monitor):
    """The labels and health of Prometheus's active targets, as its API lists them."""
    return api(monitor, f"{PROMETHEUS}/api/v1/targets?state=active")["data"]["activeTargets"]


def targets(monitor):
    """{job: [health of each target]} of Prometheus's active targets."""
    found = {}
    for target in _active_targets(monitor):
        found.setdefault(target["labels"]["job"], []).append(target["health"])
    return found


def instances(monitor, job):
    """{instance: health} of Prometheus's active targets of ``job``."""
    return {
        target["labels"]["instance"]: target["health"]
        for target in _active_targets(monitor)
        if target["labels"]["job"] == job
    }


def active_targets(monitor):
    """{(job, instance)} of Prometheus's active targets."""
    return {(target["labels"]["job"], target["labels"]["instance"]) for target in _active_targets(monitor)}


def ever_scraped(monitor):
    """{(job, instance)} of every `up` series in Prometheus's storage since its first start: each target it ever
    scraped, also those of a configuration it no longer runs."""
    return {
        (series["job"], series["instance"])
        for series in api(monitor, f"{PROMETHEUS}/api/v1/series?match%5B%5D=up&start=0")["data"]
    }


def matches(alert_labels, name, labels):
    return alert_labels.get("alertname") == name and all(alert_labels.get(k) == v for k, v in labels.items())


def prometheus_state(monitor, name, labels):
    """ "firing", "pending" or None: the state of Prometheus's alert ``name`` with these labels."""
    states = [
        alert["state"]
        for alert in api(monitor, f"{PROMETHEUS}/api/v1/alerts")["data"]["alerts"]
        if matches(alert["labels"], name, labels)
    ]
    return "firing" if "firing" in states else (states[0] if states else None)


def alertmanager_has(monitor, name, labels):
    """Whether Alertmanager holds an active alert ``name`` with these labels (Prometheus sent it)."""
    return any(
        matches(alert["labels"], name, labels) and alert["status"]["state"] == "active"
        for alert in api(monitor, f"{ALERTMANAGER}/api/v2/alerts")
    )


class AlertClock:
    """Times each expected alert from one fault's start: when Prometheus fires it, when Alertmanager holds it,
    and, after the fault is cleared, when it is gone from both."""

    def __init__(self, monitor, expected):
        self.monitor = monitor
        # [(key, alert name, {label: value})]: the key names the alert and its labels in messages and results.
        self.expected = [
            (name + "".join(f" {k}={v}" for k, v in sorted(labels.items())), name, labels) for name, labels in expected
        ]
        self.fired = {}
        self.notified = {}
        self.resolved = {}
        self.started = time.monotonic()
        self.cleared = None

    def _missing(self, record):
        return [key for key, _name, _labels in self.expected if key not in record]

    def wait_fired(self, timeout):
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            for key, name, labels in self.expected:
                now = time.monotonic() - self.started
                if key not in self.fired and prometheus_state(self.monitor, name, labels) == "firing":
                    self.fired[key] = now
                if key in self.fired and key not in self.notified and alertmanager_has(self.monitor, name, labels):
                    self.notified[key] = now
            if not self._missing(self.notified):
                return
            time.sleep(1)
        missing = self._missing(self.notified)
        raise AssertionError(f"not firing in Alertmanager {timeout} s after the fault: {missing} (fired: {self.fired})")

    def clear(self):
        self.cleared = time.monotonic()

    def wait_resolved(self, timeout):
        deadline = self.cleared + timeout
        while time.monotonic() < deadline:
            for key, name, labels in self.expected:
                if (
                    key not in self.resolved
                    and prometheus_state(self.monitor, name, labels) is None
                    and not alertmanager_has(self.monitor, name, labels)
                ):
                    self.resolved[key] = time.monotonic() - self.cleared
            if not self._missing(self.resolved):
                return
            time.sleep(1)
        raise AssertionError(f"still active {timeout} s after the fault was cleared: {self._missing(self.resolved)}")

    def summary(self):
        return "; ".join(
            f"{key}: fired {self.fired[key]:.0f} s, in Alertmanager {self.notified[key]:.0f} s, "
            f"resolved {self.resolved.get(key, float('nan')):.0f} s after the clear"
            for key in self.fired
        )
