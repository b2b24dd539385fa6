"""The lab scripts refuse bad input with a clear message before they touch Docker or the network."""

# SPDX-License-Identifier: MIT

import os
import pathlib
import re
import shutil
import subprocess
import tempfile

import pytest

LAB = pathlib.Path(__file__).resolve().parents[2] / "lab"


def run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False, **kwargs)


@pytest.mark.parametrize("script", ["up.sh", "build-image.sh", "molecule.sh", "molecule-releases.sh"])
def test_unknown_release_names_the_allowed_values(script):
    result = run(["bash", str(LAB / script), "jessie"])
    assert result.returncode == 1
    assert "unknown Debian release 'jessie'" in result.stderr
    assert "bookworm trixie" in result.stderr


@pytest.mark.parametrize("script", ["build-image.sh", "molecule.sh", "molecule-releases.sh"])
def test_missing_release_prints_usage(script):
    result = run(["bash", str(LAB / script)])
    assert result.returncode == 1
    assert "usage:" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to drop to nobody")
def test_missing_tools_as_non_root_say_what_to_install():
    # A copy that nobody can read, wherever the checkout lives (the system's temporary directory is open).
    with tempfile.NamedTemporaryFile("w", suffix=".sh") as lib:
        lib.write((LAB / "lib.sh").read_text())
        lib.flush()
        os.chmod(lib.name, 0o644)
        script = f". {lib.name}; need_packages celeryops-no-such-tool celeryops-no-such-package"
        result = run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "bash", "-c", script])
    assert result.returncode == 1
    assert "missing packages: celeryops-no-such-package" in result.stderr
    assert "apt-get install celeryops-no-such-package" in result.stderr


def test_molecule_gets_the_shared_base_config_by_path():
    # Without it molecule finds the base config only through the git work tree; from a copy of the checkout every
    # scenario would then run no create, converge or verify playbook and still exit 0.
    text = (LAB / "molecule.sh").read_text()
    match = re.search(r'^base="\$here/([^"]+)"$', text, re.M)
    assert match, "lab/molecule.sh must name the base config by its path"
    assert (LAB / match.group(1)).resolve().is_file()
    calls = re.findall(r"^\s*(?:exec )?molecule .*$", text, re.M)
    assert len(calls) == 2, calls
    assert all('--base-config "$base"' in call for call in calls), calls


def _inventory_groups(node, groups=None, found=None):
    """{host: {groups}} of an inventory mapping (the group `all` left out)."""
    found = {} if found is None else found
    for group, body in (node or {}).items():
        body = body or {}
        for host in body.get("hosts") or {}:
            found.setdefault(host, set()).update((set(groups or []) | {group}) - {"all"})
        _inventory_groups(body.get("children"), (groups or []) + [group], found)
    return found


def test_molecule_platforms_are_the_lab_inventory_hosts():
    """The lab's hosts and groups are defined by inventories/lab/hosts.yml (make lab, the benches); molecule's
    platforms must say the same, since molecule cannot take its inventory from there."""
    yaml = pytest.importorskip("yaml")
    root = LAB.parent
    inventory = _inventory_groups(yaml.safe_load((root / "inventories" / "lab" / "hosts.yml").read_text()))
    config = yaml.safe_load((root / ".config" / "molecule" / "config.yml").read_text())
    platforms = {platform["name"]: set(platform.get("groups", [])) for platform in config["platforms"]}
    assert platforms == inventory
    lab_hosts = re.search(r'LAB_HOSTS="\$\{LAB_HOSTS:-([^"}]+)\}"', (LAB / "lib.sh").read_text()).group(1).split()
    assert sorted(lab_hosts) == sorted(inventory)
