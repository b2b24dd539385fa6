"""Every role variable the docs name in backticks exists.

The user docs (``docs/*.md``, ``README.md``, ``roles/*/README.md``) name variables in inline code spans and
in fenced blocks (YAML examples, text diagrams). A name that looks like a role variable — prefix
``rabbitmq_``, ``supervisor_``, ``workers_``, ``flower_`` or ``celeryops_`` — must be defined:

- a role variable: a key of some role's ``meta/argument_specs.yml`` options or ``defaults/main.yml``, or of
  an inventory's ``group_vars``;
- a ``celeryops_*`` variable (the collection-level contract, never a role default of its own): a key of an
  inventory's ``group_vars``, or a name the roles' defaults and argument specs or the playbooks read
  (``celeryops_broker_host | default(...)``, ``celeryops_serial``).

What is not a variable and is skipped, precisely:

- part of a longer name: preceded by a letter, digit, ``_`` (``__workers_probe``, ``_workers_programs``,
  ``vault_rabbitmq_app_password``, ``test_rabbitmq_preflight.py``), ``.`` (``community.rabbitmq.rabbitmq_user``),
  ``-`` or ``/`` (a path); a placeholder is a name like any other (``<flower_credentials_dir>/...``);
- a file name: followed by a dot and a file extension (``supervisor_rpc.py``, ``flower_wait_workers.py``);
  a name followed by ``<`` is a pattern's prefix (``rabbitmq_<user>.password``) and does not match at all;
- a task tag of a role (``rabbitmq_users``, ``workers_preflight``), read from the roles' task files;
- a RabbitMQ plugin the rabbitmq role knows (``rabbitmq_management``, ``rabbitmq_shovel``), read from
  ``_rabbitmq_known_plugins`` in ``roles/rabbitmq/vars/main.yml``;
- a Python module a role installs (``celeryops_worker_control``) and a Celery remote control command it
  registers (``celeryops_hand_back``), read from ``roles/*/files/*.py``.
"""

# SPDX-License-Identifier: MIT

from __future__ import annotations

import pathlib
import re

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
ROLES = REPO / "roles"
PREFIXES = ("rabbitmq", "supervisor", "workers", "flower", "celeryops")

# A candidate name: one of the prefixes, an underscore, then lowercase letters, digits and underscores, ending
# in a letter or digit. Not preceded by a character that makes it part of a longer name or a path; not followed
# by a character that continues a name (or a pattern's placeholder).
NAME = re.compile(
    r"(?<![A-Za-z0-9_./\-])"
    r"((?:" + "|".join(PREFIXES) + r")_[a-z0-9_]*[a-z0-9])"
    r"(?![A-Za-z0-9_<\-])"
)
# A file extension right after a name makes it a file name.
FILE_EXTENSION = re.compile(r"\.(?:py|yml|yaml|j2|md|json|conf|cfg|sh|txt|log|password|tar|ini|toml)\b")
FENCE = re.compile(r"^ {0,3}(```+|~~~+)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")


def documents():
    """The user docs, relative to the repository."""
    paths = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted(ROLES.glob("*/README.md"))]
    return [path for path in paths if path.is_file()]


def code_spans(text):
    """Yield (line number, text) of every inline code span and every line of a fenced block."""
    fence = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = FENCE.match(line)
        if fence is not None:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = None
            else:
                yield number, line
            continue
        if match:
            fence = match.group(1)
            continue
        for span in INLINE_CODE.finditer(line):
            yield number, span.group(2)


def candidate_names(code):
    """The variable-like names of a piece of code, without file names."""
    for match in NAME.finditer(code):
        if FILE_EXTENSION.match(code, match.end()):
            continue
        yield match.group(1)


def load(path):
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def walk(node):
    """Every mapping and list inside a loaded YAML document, depth first."""
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def role_variables():
    names = set()
    for role in sorted(path for path in ROLES.iterdir() if path.is_dir()):
        defaults = role / "defaults" / "main.yml"
        if defaults.is_file():
            names.update(load(defaults))
        specs = role / "meta" / "argument_specs.yml"
        if specs.is_file():
            for entry in (load(specs).get("argument_specs") or {}).values():
                names.update((entry or {}).get("options") or {})
    return names


def group_vars_files():
    return sorted(
        path
        for path in REPO.glob("inventories/*/group_vars/**/*")
        if path.suffix in (".yml", ".yaml") and path.is_file()
    )


def group_vars_variables():
    names = set()
    for path in group_vars_files():
        document = load(path)
        if isinstance(document, dict):
            names.update(document)
    return names


def contract_variables():
    """celeryops_* names: set in group_vars, or read by the roles' defaults and specs or by the playbooks."""
    names = {name for name in group_vars_variables() if name.startswith("celeryops_")}
    readers = [
        *ROLES.glob("*/defaults/main.yml"),
        *ROLES.glob("*/meta/argument_specs.yml"),
        *(REPO / "playbooks").glob("*.yml"),
    ]
    for path in readers:
        names.update(re.findall(r"\bceleryops_[a-z0-9_]*[a-z0-9]\b", path.read_text(encoding="utf-8")))
    return names


def role_tags():
    tags = set()
    for path in ROLES.glob("*/tasks/*.yml"):
        for node in walk(load(path)):
            if isinstance(node, dict) and "tags" in node:
                value = node["tags"]
                tags.update([value] if isinstance(value, str) else value or [])
    return tags


def known_plugins():
    return set(load(ROLES / "rabbitmq" / "vars" / "main.yml").get("_rabbitmq_known_plugins") or [])


def role_python_names():
    """Module names of the roles' Python files and the remote control commands they register (``*_COMMAND``)."""
    names = set()
    for path in ROLES.glob("*/files/*.py"):
        names.add(path.stem)
        names.update(re.findall(r'^[A-Z_]+_COMMAND = "([a-z_]+)"$', path.read_text(encoding="utf-8"), re.M))
    return names


def defined_names():
    """Role-prefixed names that are defined (celeryops_* names are checked against contract_variables())."""
    return role_variables() | group_vars_variables()


def not_variables():
    return role_tags() | known_plugins() | role_python_names()


def undefined_names(path, defined, contract, skipped):
    """(line, name) of every variable-like name of one document that is defined nowhere."""
    found = []
    for number, code in code_spans(path.read_text(encoding="utf-8")):
        for name in candidate_names(code):
            known = contract if name.startswith("celeryops_") else defined
            if name not in skipped and name not in known:
                found.append((number, name))
    return found


def test_the_sources_are_read():
    defined = defined_names()
    assert {"rabbitmq_amqp_port", "supervisor_conf_dir", "workers_celery_workers", "flower_port"} <= defined
    assert {"celeryops_broker_host", "celeryops_credentials_dir", "celeryops_serial"} <= contract_variables()
    assert {"rabbitmq_users", "workers_preflight", "flower_service", "supervisor_install"} <= role_tags()
    assert "rabbitmq_management" in known_plugins()
    assert {"celeryops_worker_control", "celeryops_hand_back"} <= role_python_names()
    assert len(documents()) >= 5


@pytest.mark.parametrize(
    ("code", "names"),
    [
        ("`rabbitmq_app_user`", ["rabbitmq_app_user"]),
        ("workers_celery_workers: []", ["workers_celery_workers"]),
        ("{{ celeryops_broker_host | default('x') }}", ["celeryops_broker_host"]),
        ("__workers_probe _workers_programs vault_rabbitmq_app_password", []),
        ("community.rabbitmq.rabbitmq_user supervisor_rpc.py flower_wait_workers.py", []),
        ("rabbitmq_<user>.password flower_<basic auth user>.password", []),
        (
            "<flower_credentials_dir>/flower_<flower_basic_auth_user>.password",
            ["flower_credentials_dir", "flower_basic_auth_user"],
        ),
        ("/etc/x/workers_thing celeryops-broker CELERYOPS_LEDGER_DIR", []),
        ("rabbitmq_erlang_cookie", ["rabbitmq_erlang_cookie"]),
        ("workers_restart_timeout.", ["workers_restart_timeout"]),
    ],
)
def test_candidate_names(code, names):
    assert list(candidate_names(code)) == names


def test_code_spans_cover_inline_code_and_fenced_blocks():
    text = "a `x_one` b\n```yaml\nkey: `no`\nplain\n```\nafter `y`\n"
    assert list(code_spans(text)) == [(1, "x_one"), (3, "key: `no`"), (4, "plain"), (6, "y")]


@pytest.mark.parametrize("path", documents(), ids=lambda path: str(path.relative_to(REPO)))
def test_documented_variables_exist(path):
    undefined = undefined_names(path, defined_names(), contract_variables(), not_variables())
    assert undefined == [], "\n".join(
        f"{path.relative_to(REPO)}:{line}: `{name}` is not defined in any role's meta/argument_specs.yml or "
        "defaults/main.yml or an inventory's group_vars"
        + (" (nor read by the roles' defaults or the playbooks)" if name.startswith("celeryops_") else "")
        for line, name in undefined
    )
