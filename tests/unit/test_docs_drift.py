"""The docs that come from specs are up to date, and hacking/render_docs.py renders specs truthfully (issue 16).

The role READMEs' variable tables, docs/modules/*.md and docs/plugins/*.md are generated from the argument specs
and the plugins' documentation; after changing a spec, run ``make docs`` (``python hacking/render_docs.py``).
"""

# SPDX-License-Identifier: MIT

from __future__ import annotations

import pathlib
import shutil
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "hacking"))

import render_docs  # noqa: E402


def test_generated_docs_are_up_to_date():
    report = render_docs.check(REPO)
    assert report == "", f"generated docs are stale; run `make docs` and commit the result:\n{report}"


def test_every_page_is_linked_from_the_readme():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    pages = [path for path in render_docs.expected(REPO) if path.parent.parent == REPO / "docs"]
    assert len(pages) >= 3
    assert [page.name for page in pages if page.relative_to(REPO).as_posix() not in readme] == []


def test_check_finds_a_stale_table_and_a_missing_page(tmp_path):
    for part in ("galaxy.yml", "roles/supervisor", "plugins/modules/file_set.py"):
        source = REPO / part
        target = tmp_path / part
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy(source, target)
    spec = tmp_path / "roles/supervisor/meta/argument_specs.yml"
    spec.write_text(
        spec.read_text(encoding="utf-8").replace("description: Start supervisord at boot.", "description: Changed."),
        encoding="utf-8",
    )
    report = render_docs.check(tmp_path)
    assert "stale: roles/supervisor/README.md" in report
    assert "-| `supervisor_service_enabled` | bool | `true` | Start supervisord at boot. |" in report
    assert "+| `supervisor_service_enabled` | bool | `true` | Changed. |" in report
    assert "stale: docs/modules/file_set.md\n--- /dev/null" in report
    # Writing brings both up to date; the check then passes and a second write changes nothing.
    assert sorted(path.relative_to(tmp_path).as_posix() for path in render_docs.write(tmp_path)) == [
        "docs/modules/file_set.md",
        "roles/supervisor/README.md",
    ]
    assert render_docs.check(tmp_path) == ""
    assert render_docs.write(tmp_path) == []


def test_a_page_whose_source_is_gone_is_stale(tmp_path):
    (tmp_path / "galaxy.yml").write_text("namespace: celeryops\nname: stack\n", encoding="utf-8")
    page = tmp_path / "docs" / "modules" / "gone.md"
    page.parent.mkdir(parents=True)
    page.write_text(render_docs.PAGE_MARK.format(source="plugins/modules/gone.py") + "\n", encoding="utf-8")
    (tmp_path / "docs" / "modules" / "handwritten.md").write_text("# Kept\n", encoding="utf-8")
    assert "stale: docs/modules/gone.md" in render_docs.check(tmp_path)
    assert render_docs.write(tmp_path) == [page]
    assert not page.exists()
    assert (tmp_path / "docs" / "modules" / "handwritten.md").exists()


def test_a_readme_without_markers_is_an_error():
    with pytest.raises(render_docs.DocsError, match="roles/x/README.md: needs exactly one pair of markers"):
        render_docs.replace_block("# x\n\n## Variables\n\n| a |\n", "block", "roles/x/README.md")


def test_replace_block_keeps_the_prose_around_the_markers():
    text = f"# x\n\n## Variables\n\n{render_docs.BEGIN}\nold\n{render_docs.END}\n\nProse after.\n"
    new = render_docs.replace_block(text, f"{render_docs.BEGIN}\nnew\n{render_docs.END}", "README.md")
    assert new == f"# x\n\n## Variables\n\n{render_docs.BEGIN}\nnew\n{render_docs.END}\n\nProse after.\n"


@pytest.mark.parametrize(
    ("spec", "label"),
    [
        ({"type": "list", "elements": "str"}, "list of str"),
        ({"type": "list", "elements": "dict"}, "list of dict"),
        ({"type": "list"}, "list"),
        ({"type": "dict"}, "dict"),
        ({"type": "path"}, "path"),
        ({}, "str"),
    ],
)
def test_type_label(spec, label):
    assert render_docs.type_label(spec) == label


@pytest.mark.parametrize(
    ("value", "label"),
    [
        ("{{ celeryops_broker_port | default(5672) }}", "`celeryops_broker_port` if defined, else `5672`"),
        ("{{ celeryops_broker_vhost | default('celery') }}", "`celeryops_broker_vhost` if defined, else `celery`"),
        ("{{ celeryops_broker_app_password | default('') }}", '`celeryops_broker_app_password` if defined, else `""`'),
        (
            "{{ celeryops_credentials_dir | default(inventory_dir ~ '/credentials') }}",
            "`celeryops_credentials_dir` if defined, else `{{ inventory_dir }}/credentials`",
        ),
        (
            "{{ celeryops_broker_host\n| default(groups['rabbitmq'] | default([]) | first | default('localhost')) }}",
            "`celeryops_broker_host` if defined, else "
            "`{{ groups['rabbitmq'] | default([]) | first | default('localhost') }}`",
        ),
        # Not a plain default of a variable: shown as written, whitespace folded.
        ("{{ inventory_dir }}/credentials", "`{{ inventory_dir }}/credentials`"),
        ("{{ a | default(1) | int }}", "`{{ a | default(1) | int }}`"),
        ("{{ a | default(1, true) }}", "`{{ a | default(1, true) }}`"),
        ("{{ a.b | default(1) }}", "`{{ a.b | default(1) }}`"),
        (
            "{{ groups['w'] | map('extract', hostvars)\n  | list }}",
            "`{{ groups['w'] | map('extract', hostvars) | list }}`",
        ),
    ],
)
def test_jinja_defaults(value, label):
    assert render_docs.default_label(value) == label


@pytest.mark.parametrize(
    ("value", "label"),
    [
        ("", '`""`'),
        ("2GB", "`2GB`"),
        ("5.7.0", "`5.7.0`"),
        ("0700", '`"0700"`'),
        ("true", '`"true"`'),
        (True, "`true`"),
        (0.6, "`0.6`"),
        ([], "`[]`"),
        ({}, "`{}`"),
        (["guest"], '`["guest"]`'),
    ],
)
def test_literal_defaults(value, label):
    assert render_docs.default_label(value) == label


def test_choices_and_no_log_go_into_the_role_table():
    options = {"x_level": {"type": "str", "default": "info", "choices": ["debug", "info"], "description": "Level."}}
    options["x_password"] = {"type": "str", "default": "", "no_log": True, "description": "Password."}
    lines = render_docs.role_option_tables(options)
    assert lines[2] == "| `x_level` | str | `info` | Level. Choices: `debug`, `info`. |"
    assert lines[3] == '| `x_password` | str | `""` | Password. Secret: kept out of logs (`no_log`). |'


def test_choices_have_their_own_column_in_plugin_tables():
    lines = render_docs.plugin_option_tables({"state": {"type": "str", "required": True, "choices": ["a", "b"]}})
    assert lines[2] == "| `state` | str | yes |  | `a`, `b` |  |"


def test_suboptions_get_a_table_of_their_own():
    options = {
        "x_workers": {
            "type": "list",
            "elements": "dict",
            "default": [],
            "description": "Workers.",
            "options": {
                "name": {"type": "str", "required": True, "description": "Name."},
                "env": {"type": "dict", "description": "Env.", "options": {"key": {"description": "Key."}}},
            },
        }
    }
    assert render_docs.role_option_tables(options) == [
        "| Variable | Type | Default | Description |",
        "|---|---|---|---|",
        "| `x_workers` | list of dict | `[]` | Workers. |",
        "",
        "Each item of `x_workers`:",
        "",
        "| Key | Type | Default | Description |",
        "|---|---|---|---|",
        "| `name` | str, required |  | Name. |",
        "| `env` | dict |  | Env. |",
        "",
        "The keys of `x_workers[].env`:",
        "",
        "| Key | Type | Default | Description |",
        "|---|---|---|---|",
        "| `key` | str |  | Key. |",
    ]


def test_a_description_list_becomes_paragraphs_and_a_cell_joins_them():
    description = ["First C(one).", "Second with O(x_option) and\nI(y)."]
    assert render_docs.paragraphs(description) == ["First `one`.", "Second with `x_option` and `y`."]
    row = render_docs.role_option_tables({"x": {"description": description, "default": 1, "type": "int"}})[2]
    assert row == "| `x` | int | `1` | First `one`. Second with `x_option` and `y`. |"


@pytest.mark.parametrize(
    ("text", "markdown"),
    [
        ("C(int(os.environ.get(...)))", "`int(os.environ.get(...))`"),
        ("B(one) run", "**one** run"),
        ("see M(ansible.builtin.file)", "see `ansible.builtin.file`"),
        ("RV(programs[].active_tasks)", "`programs[].active_tasks`"),
        ("O(ns.coll.mod#module:name=x)", "`name=x`"),
        ("V(a\\)b)", "`a)b`"),
        ("L(the guide,https://example.invalid/g)", "[the guide](https://example.invalid/g)"),
        ("U(https://example.invalid)", "<https://example.invalid>"),
        ("reads <dir>/x_<user>.password", "reads \\<dir>/x\\_\\<user>.password"),
        ("C(`tick`)", "`` `tick` ``"),
        ("API(not markup) and C(unclosed", "API(not markup) and C(unclosed"),
    ],
)
def test_markup(text, markdown):
    assert render_docs.markup(text) == markdown


def test_pipes_are_escaped_in_cells():
    row = render_docs.table(["A"], [["`a | b`"]])[2]
    assert row == "| `a \\| b` |"
