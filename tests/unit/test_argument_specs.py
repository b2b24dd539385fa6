"""Every role's meta/argument_specs.yml lists exactly the variables of its defaults/main.yml, same defaults."""

# SPDX-License-Identifier: MIT

import pathlib

import pytest
import yaml

ROLES = pathlib.Path(__file__).resolve().parents[2] / "roles"
ROLE_NAMES = sorted(path.name for path in ROLES.iterdir() if (path / "defaults" / "main.yml").is_file())


def load(path):
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def test_every_role_is_checked():
    assert {"rabbitmq", "supervisor", "workers", "flower"} <= set(ROLE_NAMES)


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_specs_mirror_defaults(role):
    defaults = load(ROLES / role / "defaults" / "main.yml")
    specs = load(ROLES / role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(specs) == sorted(defaults), "keys differ between defaults/main.yml and argument_specs.yml"
    for name, value in defaults.items():
        assert specs[name].get("default") == value, f"{role}: {name} default differs"


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_variables_carry_the_role_prefix(role):
    defaults = load(ROLES / role / "defaults" / "main.yml")
    assert [name for name in defaults if not name.startswith(f"{role}_")] == []


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_every_option_is_described(role):
    specs = load(ROLES / role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert [name for name, spec in specs.items() if not spec.get("description")] == []
