"""The built collection tarball: what a user installs holds the product and nothing of the harness.

The tarball is built from a copy of the tracked files into which the usual clutter of a working checkout is
planted (generated credentials, caches, a virtualenv, byte code), so the test fails when galaxy.yml's
build_ignore would ship any of it. molecule/stack/tests/test_installed_collection.py installs such a tarball
and deploys the lab with it.
"""

import json
import pathlib
import shutil
import subprocess
import tarfile

import pytest
import yaml
from ansible.release import __version__ as ansible_core_version
from packaging.specifiers import SpecifierSet

PROJECT = pathlib.Path(__file__).resolve().parents[2]

# What a working checkout holds besides the tracked files (paths relative to its top).
CLUTTER = (
    "inventories/lab/credentials/rabbitmq_celery.password",
    "inventories/production/credentials/flower_admin.password",
    "credentials/rabbitmq_erlang_cookie",
    ".venv/bin/python",
    ".cache/lab/state",
    ".ansible/collections/ansible_collections/x/y/MANIFEST.json",
    ".pytest_cache/v/cache/nodeids",
    ".ruff_cache/CACHEDIR.TAG",
    "build/screenshots/flower.png",
    "collections/ansible_collections/celeryops/README.md",
    "plugins/module_utils/__pycache__/celery_cli.cpython-311.pyc",
    "examples/myproject/myproject/__pycache__/celery.cpython-311.pyc",
    "tests/output/junit.xml",
)

# Top-level entries of the checkout that are harness, not product.
HARNESS = {
    ".ansible",
    ".cache",
    ".ci",
    ".config",
    ".git",
    ".pytest_cache",
    ".ruff_cache",
    ".venv",
    "bench",
    "build",
    "collections",
    "credentials",
    "hacking",
    "lab",
    "molecule",
    "tests",
}

REQUIRED = (
    "MANIFEST.json",
    "FILES.json",
    "README.md",
    "CHANGELOG.rst",
    "meta/runtime.yml",
    "playbooks/site.yml",
    "playbooks/restart_workers.yml",
    "plugins/modules/celery_worker.py",
    "plugins/modules/file_set.py",
    "plugins/filter/celery_inspect.py",
    "plugins/filter/celery_broker_heartbeat.yml",
    "plugins/filter/directory_problems.py",
    "plugins/filter/secret_weakness.py",
    "plugins/module_utils/celery_supervisor.py",
    "inventories/production/hosts.yml",
    "docs/architecture.md",
) + tuple(
    f"roles/{role}/{path}"
    for role in ("rabbitmq", "supervisor", "workers", "flower")
    for path in ("tasks/main.yml", "defaults/main.yml", "meta/argument_specs.yml", "README.md")
)


def _tracked_files():
    out = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT, capture_output=True, text=True, check=True).stdout
    return [name for name in out.split("\0") if name]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Build from a cluttered copy of the checkout; return (members, manifest)."""
    tree = tmp_path_factory.mktemp("checkout")
    for name in _tracked_files():
        source = PROJECT / name
        if source.is_symlink() or not source.is_file():
            continue
        target = tree / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    for name in CLUTTER:
        path = tree / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("clutter\n")
    output = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        ["ansible-galaxy", "collection", "build", str(tree), "--output-path", str(output)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (tarball,) = output.glob("celeryops-stack-*.tar.gz")
    with tarfile.open(tarball) as archive:
        members = [member.name.rstrip("/") for member in archive.getmembers()]
        manifest = json.load(archive.extractfile("MANIFEST.json"))
    return members, manifest


def test_every_part_of_the_product_ships(built):
    members = built[0]
    missing = [name for name in REQUIRED if name not in members]
    assert not missing, f"the tarball lacks {missing}"


def test_nothing_of_the_harness_ships(built):
    members = built[0]
    harness = sorted({name.split("/")[0] for name in members} & HARNESS)
    assert not harness, f"the tarball holds harness directories {harness}"
    assert not [name for name in members if name.startswith("inventories/lab")], "the lab inventory ships"


@pytest.mark.parametrize(
    ("why", "is_bad"),
    [
        ("a credentials directory", lambda parts: "credentials" in parts[:-1] or parts[-1] == "credentials"),
        ("a generated secret", lambda parts: parts[-1].endswith((".password", "_cookie"))),
        ("byte code", lambda parts: "__pycache__" in parts or parts[-1].endswith(".pyc")),
        ("a cache", lambda parts: any(part.endswith("_cache") or part == ".cache" for part in parts)),
        ("a virtualenv", lambda parts: ".venv" in parts or "site-packages" in parts),
    ],
)
def test_no_clutter_anywhere(built, why, is_bad):
    members = built[0]
    bad = [name for name in members if is_bad(name.split("/"))]
    assert not bad, f"the tarball holds {why}: {bad}"


def test_manifest_matches_galaxy_yml(built):
    manifest = built[1]
    galaxy = yaml.safe_load((PROJECT / "galaxy.yml").read_text())
    info = manifest["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == (
        galaxy["namespace"],
        galaxy["name"],
        galaxy["version"],
    )


def test_dependencies_are_exactly_the_collections_the_code_names():
    """galaxy.yml lists each collection outside ansible.builtin that roles, playbooks or plugins use."""
    galaxy = yaml.safe_load((PROJECT / "galaxy.yml").read_text())
    used = set()
    for folder in ("roles", "playbooks", "plugins"):
        for path in (PROJECT / folder).rglob("*"):
            if path.suffix in (".yml", ".yaml", ".py", ".j2") and path.is_file():
                for word in path.read_text().split():
                    parts = word.strip("\"'`:,()[]{}|").split(".")
                    if len(parts) >= 3 and parts[0] == "community" and parts[1].isidentifier():
                        used.add(f"community.{parts[1]}")
    assert set(galaxy["dependencies"]) == used


def test_requires_ansible_admits_the_ansible_core_we_test_with():
    spec = yaml.safe_load((PROJECT / "meta" / "runtime.yml").read_text())["requires_ansible"]
    assert ansible_core_version in SpecifierSet(spec), (
        f"meta/runtime.yml requires_ansible {spec!r} excludes ansible-core {ansible_core_version}, the one tested"
    )
