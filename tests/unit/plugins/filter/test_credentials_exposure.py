# Copyright (c) celeryops.stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""When Ansible would read a credentials directory as inventory, and when not."""

from __future__ import annotations

import pytest

from ansible_collections.celeryops.stack.plugins.filter.credentials_exposure import (
    FilterModule,
    credentials_exposure,
)


@pytest.fixture
def inventory(tmp_path):
    """An inventory directory with hosts.yml, and a credentials directory inside it."""
    directory = tmp_path / "inventories" / "production"
    (directory / "credentials").mkdir(parents=True)
    (directory / "hosts.yml").write_text("all: {}\n")
    return directory


def test_inside_a_directory_source_is_exposed(inventory):
    message = credentials_exposure(str(inventory / "credentials"), [str(inventory)])
    assert f"inside the inventory directory {inventory}" in message
    assert "ignore_patterns" in message


def test_the_inventory_directory_itself_is_exposed(inventory):
    assert credentials_exposure(str(inventory), [str(inventory)])


def test_a_file_source_reads_no_directory(inventory):
    assert credentials_exposure(str(inventory / "credentials"), [str(inventory / "hosts.yml")]) == ""


def test_outside_every_source_is_safe(inventory, tmp_path):
    (tmp_path / "secrets").mkdir()
    assert credentials_exposure(str(tmp_path / "secrets"), [str(inventory)]) == ""


@pytest.mark.parametrize(
    ("patterns", "extensions", "exposed"),
    [
        (["^credentials$"], [], False),
        (["^(credentials|tls)$"], [], False),
        (["^creds$"], [], True),
        ([], [".txt", "~"], True),
        ([], ["dentials"], False),
    ],
)
def test_ignore_settings(inventory, patterns, extensions, exposed):
    message = credentials_exposure(str(inventory / "credentials"), [str(inventory)], patterns, extensions)
    assert bool(message) is exposed


def test_a_nested_directory_is_ignored_through_its_parent(inventory):
    nested = inventory / "credentials" / "tls"
    nested.mkdir()
    assert credentials_exposure(str(nested), [str(inventory)], ["^credentials$"]) == ""
    assert credentials_exposure(str(nested), [str(inventory)], ["^tls$"]) == ""
    assert credentials_exposure(str(nested), [str(inventory)], ["^other$"])


@pytest.mark.parametrize("name", [".secrets", "group_vars", "host_vars"])
def test_names_ansible_always_skips(inventory, name):
    (inventory / name).mkdir()
    assert credentials_exposure(str(inventory / name), [str(inventory)]) == ""


def test_a_sibling_with_a_common_prefix_is_outside(inventory, tmp_path):
    sibling = tmp_path / "inventories" / "production-secrets"
    sibling.mkdir()
    assert credentials_exposure(str(sibling), [str(inventory)]) == ""


def test_a_directory_reached_through_a_link_is_exposed(inventory, tmp_path):
    link = tmp_path / "link-to-production"
    link.symlink_to(inventory)
    assert credentials_exposure(str(link / "credentials"), [str(inventory)])


@pytest.mark.parametrize(("directory", "sources"), [("", ["/x"]), (None, ["/x"]), ("/x", "/x"), ("/x", None)])
def test_bad_arguments_raise_type_error(directory, sources):
    with pytest.raises(TypeError):
        credentials_exposure(directory, sources)


def test_registered_as_filter():
    assert FilterModule().filters()["credentials_exposure"] is credentials_exposure
