"""playbooks/site.yml deploys the node exporter on every host Prometheus scrapes, and only when the group
`monitoring` has a host: an inventory without monitoring gets nothing new (ansible-playbook --list-hosts)."""

import re

import pytest
from role_runner import PROJECT, run_playbook

SITE = PROJECT / "playbooks" / "site.yml"
PLAY = "Deploy the node exporter on the hosts Prometheus scrapes"

WITHOUT_MONITORING = "[rabbitmq]\nmq\n[workers]\napp1\napp2\n[flower]\napp1\n"


def _play_hosts(tmp_path, inventory):
    """The hosts ansible-playbook lists for the node exporter's play."""
    (tmp_path / "hosts.ini").write_text(inventory)
    result = run_playbook(["-i", str(tmp_path / "hosts.ini"), str(SITE), "--list-hosts"], timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    plays = re.split(r"^\s*play #\d+ ", result.stdout, flags=re.M)
    [play] = [block for block in plays if PLAY in block]
    count = int(re.search(r"hosts \((\d+)\):", play).group(1))
    hosts = re.findall(r"^\s{6}(\S+)\s*$", play, re.M)
    assert len(hosts) == count, play
    return set(hosts)


def test_every_scraped_host_gets_the_exporter(tmp_path):
    hosts = _play_hosts(tmp_path, WITHOUT_MONITORING + "[monitoring]\nmonitor\n[other]\nbastion\n")
    assert hosts == {"mq", "app1", "app2", "monitor"}


@pytest.mark.parametrize("inventory", [WITHOUT_MONITORING, WITHOUT_MONITORING + "[monitoring]\n"])
def test_an_inventory_without_monitoring_deploys_no_exporter(tmp_path, inventory):
    assert _play_hosts(tmp_path, inventory) == set()
