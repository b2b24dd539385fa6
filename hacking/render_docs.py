"""Render the documentation that comes from specs: role variable tables, module and plugin pages (issue 16).

The specs are the one source:

- each role's ``meta/argument_specs.yml`` (every entry point) gives the variable table of ``roles/<role>/README.md``,
  written between the two marker comments of its "Variables" section (the rest of the README is prose kept by hand);
- each module's ``DOCUMENTATION``, ``EXAMPLES`` and ``RETURN`` give ``docs/modules/<module>.md``;
- each other plugin's documentation (a ``.yml`` file beside a filter or test plugin, or the blocks of a plugin's
  ``.py`` file) gives ``docs/plugins/<plugin>.md``.

Usage, from the checkout with the virtualenv's Python (``make docs`` runs the first):

    python hacking/render_docs.py           # write what differs
    python hacking/render_docs.py --check   # write nothing; list each stale file with a diff, exit 1 if any

Exit status: 0 when everything is (now) up to date; 1 with --check when a file is stale; 2 when a spec or a README
cannot be rendered (a README without the markers, a documentation block that is not YAML).
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import pathlib
import re
import sys

import yaml
from jinja2 import Environment, nodes
from jinja2.exceptions import TemplateSyntaxError

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = "hacking/render_docs.py"
BEGIN = f"<!-- BEGIN generated from meta/argument_specs.yml by {SCRIPT}: do not edit -->"
END = "<!-- END generated -->"
# The first line of every generated page; only files that start with it are ever removed.
PAGE_MARK = "<!-- Generated from {source} by " + SCRIPT + ": do not edit, run `make docs`. -->"
PAGE_MARK_PREFIX = "<!-- Generated from "
# Plugin directories that hold no documented plugin of their own.
NOT_PLUGINS = {"modules", "module_utils", "doc_fragments"}


class DocsError(Exception):
    """A spec or a README that cannot be rendered; the message names the file and what to fix."""


# ---------------------------------------------------------------------------------------------------------------
# Markdown text: Ansible's markup (C(), I(), O(), ...) becomes Markdown, everything else is escaped.

_MARKUP = re.compile(r"\b(RV|B|I|C|M|U|L|R|O|V|E|P)\(|\bHORIZONTALLINE\b")
# Semantic markup (O(), V(), RV(), E(), P()) may escape a parenthesis or a backslash with a backslash.
_SEMANTIC = {"O", "V", "RV", "E", "P"}
_PLAIN_SPECIALS = re.compile(r"[\\`*<]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def escape_text(text: str) -> str:
    """Escape plain text for Markdown: the characters that would start code, emphasis or an HTML tag."""
    return _PLAIN_SPECIALS.sub(lambda match: "\\" + match.group(0), text)


def code(text: str) -> str:
    """A Markdown code span holding ``text`` exactly, whatever backticks it contains."""
    text = str(text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    if text.startswith("`") or text.endswith("`") or (text.startswith(" ") and text.endswith(" ") and text.strip()):
        text = f" {text} "
    return f"{fence}{text}{fence}"


def _closing(text: str, start: int, semantic: bool) -> tuple[int, str] | None:
    """The index of the parenthesis that closes a markup call opened just before ``start``, and its content."""
    depth = 0
    content = []
    index = start
    while index < len(text):
        char = text[index]
        if semantic and char == "\\" and index + 1 < len(text):
            content.append(text[index + 1])
            index += 2
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                return index, "".join(content)
            depth -= 1
        content.append(char)
        index += 1
    return None


def _strip_reference(content: str) -> str:
    """``O(ns.coll.plugin#type:name=value)`` names another plugin's option: keep ``name=value``."""
    content = re.sub(r"^[\w.]+#[\w]+:", "", content)
    return content.removeprefix("ignore:")


def _markup_call(name: str, content: str) -> str:
    if name == "B":
        return f"**{markup(content)}**"
    if name == "U":
        return f"<{content}>"
    if name == "L":
        label, url = content.rsplit(",", 1) if "," in content else (content, content)
        return f"[{escape_text(label.strip())}]({url.strip()})"
    if name == "R":
        return escape_text(content.rpartition(",")[0].strip() or content)
    if name in ("I", "O", "RV"):
        return code(_strip_reference(content))
    if name == "P":
        return code(content.partition("#")[0])
    # C(), M(), V(), E(): literal text. I() (classic) and O() name an option: code, as the option tables show them.
    return code(content)


def markup(text: str) -> str:
    """Ansible documentation markup to Markdown (one paragraph)."""
    text = " ".join(str(text).split())
    out = []
    position = 0
    while True:
        match = _MARKUP.search(text, position)
        if match is None:
            out.append(escape_text(text[position:]))
            return "".join(out)
        out.append(escape_text(text[position : match.start()]))
        if match.group(0) == "HORIZONTALLINE":
            out.append("—")
            position = match.end()
            continue
        closed = _closing(text, match.end(), match.group(1) in _SEMANTIC)
        if closed is None:
            out.append(escape_text(match.group(0)))
            position = match.end()
            continue
        end, content = closed
        out.append(_markup_call(match.group(1), content))
        position = end + 1


def paragraphs(description) -> list[str]:
    """A spec's description (a string or a list of strings) as Markdown paragraphs."""
    if description is None:
        return []
    if isinstance(description, str):
        description = [description]
    return [markup(item) for item in description if str(item).strip()]


def cell(text: str) -> str:
    """Text for one table cell: one line, pipes escaped (inside code spans too, as GFM tables require)."""
    return " ".join(text.split()).replace("|", "\\|")


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return lines


# ---------------------------------------------------------------------------------------------------------------
# Values: types, literal defaults, Jinja defaults, choices.


def type_label(spec: dict) -> str:
    """``list`` with ``elements: str`` is "list of str"; an option without a type is a str (the spec's default)."""
    kind = spec.get("type") or "str"
    if kind == "list" and spec.get("elements"):
        return f"list of {spec['elements']}"
    return str(kind)


def literal(value) -> str:
    """A YAML value as a reader would write it: strings bare unless YAML would read them as something else."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        plain = value != "" and value == value.strip() and "\n" not in value
        if plain:
            try:
                plain = yaml.safe_load(value) == value
            except yaml.YAMLError:
                plain = False
        return value if plain else json.dumps(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


_JINJA = Environment()  # noqa: S701 (parsed only, never rendered into HTML)
_DEFAULT_CALL = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\|\s*default\((.*)\)\s*\}\}")


def _expression(text: str):
    """The Jinja node of ``{{ text }}``, or None when it is not one expression."""
    try:
        body = _JINJA.parse("{{ " + text + " }}").body
    except TemplateSyntaxError:
        return None
    if len(body) == 1 and isinstance(body[0], nodes.Output) and len(body[0].nodes) == 1:
        return body[0].nodes[0]
    return None


def _argument_label(text: str) -> str:
    """The fallback of a ``default()``: a literal, a plain string template (``a ~ '/b'``), or the expression."""
    node = _expression(text)
    if isinstance(node, (nodes.Const, nodes.List, nodes.Tuple, nodes.Dict)):
        try:
            return code(literal(node.as_const(nodes.EvalContext(_JINJA))))
        except nodes.Impossible:
            pass
    if isinstance(node, nodes.Concat) and all(
        isinstance(part, nodes.Name) or (isinstance(part, nodes.Const) and isinstance(part.value, str))
        for part in node.nodes
    ):
        parts = [f"{{{{ {part.name} }}}}" if isinstance(part, nodes.Name) else part.value for part in node.nodes]
        return code("".join(parts))
    return code("{{ " + text + " }}")


def jinja_default(expression: str) -> str:
    """A default that is a Jinja expression, for a table cell.

    ``{{ other | default(fallback) }}`` reads "`other` if defined, else `fallback`" (Jinja's ``default`` applies to
    undefined variables only), the fallback shown as a literal, as a string template, or as its expression; any other
    expression is shown as it is written, whitespace folded.
    """
    text = " ".join(expression.split())
    match = _DEFAULT_CALL.fullmatch(text)
    if match:
        variable, argument = match.groups()
        node = _expression(text[2:-2].strip())
        if (
            isinstance(node, nodes.Filter)
            and node.name == "default"
            and isinstance(node.node, nodes.Name)
            and node.node.name == variable
            and len(node.args) == 1
            and not node.kwargs
            and node.dyn_args is None
            and node.dyn_kwargs is None
            and _expression(argument) is not None
        ):
            return f"{code(variable)} if defined, else {_argument_label(argument)}"
    return code(text)


def default_label(value) -> str:
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        return jinja_default(value)
    return code(literal(value))


def choices_label(choices) -> str:
    if isinstance(choices, dict):
        choices = list(choices)
    return ", ".join(code(literal(choice)) for choice in choices)


# ---------------------------------------------------------------------------------------------------------------
# Option tables, shared by role variables and plugin options.


def _suboptions(spec: dict) -> dict:
    return spec.get("options") or spec.get("suboptions") or {}


def _extras(spec: dict, with_choices: bool) -> list[str]:
    """What a description cell adds after the description itself."""
    extra = []
    if with_choices and spec.get("choices"):
        extra.append(f"Choices: {choices_label(spec['choices'])}.")
    if spec.get("aliases"):
        extra.append(f"Aliases: {', '.join(code(alias) for alias in spec['aliases'])}.")
    if spec.get("no_log"):
        extra.append("Secret: kept out of logs (`no_log`).")
    if spec.get("version_added") and spec.get("version_added") != "0.1.0":
        extra.append(f"Added in version {escape_text(str(spec['version_added']))}.")
    return extra


def _sub_heading(path: str, spec: dict) -> str:
    if spec.get("type") == "list":
        return f"Each item of {code(path)}:"
    return f"The keys of {code(path)}:"


def role_option_tables(options: dict, first_column: str = "Variable", path: str = "") -> list[str]:
    """Variable | Type | Default | Description, then one table per option with suboptions, depth first."""
    rows = []
    nested = []
    for name, spec in options.items():
        spec = spec or {}
        kind = type_label(spec) + (", required" if spec.get("required") else "")
        default = default_label(spec["default"]) if "default" in spec else ""
        text = " ".join(paragraphs(spec.get("description")) + _extras(spec, with_choices=True))
        rows.append([code(name), kind, default, text])
        if _suboptions(spec):
            child = f"{path}{name}" + ("[]" if spec.get("type") == "list" else "")
            nested.append((f"{path}{name}", child, spec))
    lines = table([first_column, "Type", "Default", "Description"], rows)
    for label, child, spec in nested:
        lines += ["", _sub_heading(label, spec), ""]
        lines += role_option_tables(_suboptions(spec), "Key", child + ".")
    return lines


def plugin_option_tables(options: dict, first_column: str = "Option", path: str = "") -> list[str]:
    """Option | Type | Required | Default | Choices | Description, then one table per option with suboptions."""
    rows = []
    nested = []
    for name, spec in options.items():
        spec = spec or {}
        default = default_label(spec["default"]) if "default" in spec else ""
        choices = choices_label(spec["choices"]) if spec.get("choices") else ""
        text = " ".join(paragraphs(spec.get("description")) + _extras(spec, with_choices=False))
        rows.append([code(name), type_label(spec), "yes" if spec.get("required") else "no", default, choices, text])
        if _suboptions(spec):
            child = f"{path}{name}" + ("[]" if spec.get("type") == "list" else "")
            nested.append((f"{path}{name}", child, spec))
    lines = table([first_column, "Type", "Required", "Default", "Choices", "Description"], rows)
    for label, child, spec in nested:
        lines += ["", _sub_heading(label, spec), ""]
        lines += plugin_option_tables(_suboptions(spec), "Key", child + ".")
    return lines


_CONSTRAINTS = {
    "mutually_exclusive": "Mutually exclusive",
    "required_together": "Required together",
    "required_one_of": "At least one of",
}


def constraint_lines(entry: dict) -> list[str]:
    """The cross-option rules of an entry point, one bullet each."""
    lines = []
    for key, label in _CONSTRAINTS.items():
        for group in entry.get(key) or []:
            lines.append(f"- {label}: {', '.join(code(name) for name in group)}.")
    for rule in entry.get("required_if") or []:
        name, value, required = rule[0], rule[1], rule[2]
        which = "at least one of" if len(rule) > 3 and rule[3] else "all of"
        needed = ", ".join(code(item) for item in required)
        lines.append(f"- When {code(name)} is {code(literal(value))}, {which}: {needed}.")
    for name, required in (entry.get("required_by") or {}).items():
        required = [required] if isinstance(required, str) else required
        lines.append(f"- {code(name)} requires {', '.join(code(item) for item in required)}.")
    return lines


# ---------------------------------------------------------------------------------------------------------------
# Role READMEs.


def render_role_block(specs: dict) -> str:
    """The generated part of a role README's "Variables" section, markers included."""
    entry_points = specs.get("argument_specs") or {}
    lines = [BEGIN, ""]
    lines.append("From `meta/argument_specs.yml`, which mirrors `defaults/main.yml`; regenerate with `make docs`.")
    several = len(entry_points) > 1 or list(entry_points) != ["main"]
    for name, entry in entry_points.items():
        entry = entry or {}
        if several:
            lines += ["", f"### Entry point {code(name)}"]
            if entry.get("short_description"):
                lines += ["", markup(entry["short_description"])]
        options = entry.get("options") or {}
        lines.append("")
        if options:
            lines += role_option_tables(options)
        else:
            lines.append("No variables.")
        constraints = constraint_lines(entry)
        if constraints:
            lines += ["", *constraints]
    lines += ["", END]
    return "\n".join(lines)


def replace_block(text: str, block: str, where: str) -> str:
    """``text`` with what lies between (and including) the markers replaced by ``block``."""
    start = text.find(BEGIN)
    end = text.find(END)
    if start < 0 or end < start or text.count(BEGIN) != 1 or text.count(END) != 1:
        raise DocsError(
            f"{where}: needs exactly one pair of markers in its Variables section, in this order:\n  {BEGIN}\n  {END}"
        )
    return text[:start] + block + text[end + len(END) :]


def _where(path: pathlib.Path) -> str:
    """A path for a message: relative to the checkout when it is inside it."""
    try:
        return path.relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def load_yaml(path: pathlib.Path):
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise DocsError(f"{_where(path)}: not valid YAML: {error}") from error


def role_targets(root: pathlib.Path) -> dict[pathlib.Path, str]:
    targets = {}
    for spec_path in sorted(root.glob("roles/*/meta/argument_specs.yml")):
        role = spec_path.parents[1]
        readme = role / "README.md"
        where = readme.relative_to(root).as_posix()
        if not readme.is_file():
            raise DocsError(f"{where}: missing; the role needs a README with the markers of its variable table")
        block = render_role_block(load_yaml(spec_path) or {})
        targets[readme] = replace_block(readme.read_text(encoding="utf-8"), block, where)
    return targets


# ---------------------------------------------------------------------------------------------------------------
# Module and plugin pages.


def read_python_docs(path: pathlib.Path) -> dict:
    """DOCUMENTATION, EXAMPLES and RETURN of a plugin's .py file, read without importing it."""
    found = {}
    for statement in ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body:
        if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Constant):
            for target in statement.targets:
                if isinstance(target, ast.Name) and target.id in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
                    found[target.id] = statement.value.value
    docs = {}
    for key in ("DOCUMENTATION", "RETURN"):
        if key in found:
            try:
                docs[key] = yaml.safe_load(found[key]) or {}
            except yaml.YAMLError as error:
                raise DocsError(f"{_where(path)}: {key} is not valid YAML: {error}") from error
    if "EXAMPLES" in found:
        docs["EXAMPLES"] = found["EXAMPLES"]
    return docs


def collection_name(root: pathlib.Path) -> str:
    galaxy = load_yaml(root / "galaxy.yml") or {}
    return f"{galaxy.get('namespace', 'celeryops')}.{galaxy.get('name', 'stack')}"


def _bullets(items) -> list[str]:
    if isinstance(items, str):
        items = [items]
    return [f"- {markup(item)}" for item in items or []]


def _see_also(items) -> list[str]:
    lines = []
    for item in items or []:
        if "link" in item:
            text = f"- [{escape_text(item.get('name', item['link']))}]({item['link']})"
        elif "module" in item:
            text = f"- Module {code(item['module'])}"
        elif "plugin" in item:
            text = f"- {escape_text(str(item.get('plugin_type', '')).capitalize())} plugin {code(item['plugin'])}"
        elif "ref" in item:
            text = f"- {escape_text(item.get('name', item['ref']))}"
        else:
            continue
        description = " ".join(paragraphs(item.get("description")))
        lines.append(f"{text}: {description}" if description else text)
    return lines


def _attributes(attributes: dict) -> list[str]:
    rows = []
    for name, spec in attributes.items():
        spec = spec or {}
        text = paragraphs(spec.get("description")) + paragraphs(spec.get("details"))
        if spec.get("platforms"):
            platforms = spec["platforms"]
            platforms = [platforms] if isinstance(platforms, str) else platforms
            text.append(f"Platforms: {', '.join(code(item) for item in platforms)}.")
        rows.append([code(name), escape_text(str(spec.get("support", ""))), " ".join(text)])
    return table(["Attribute", "Support", "Description"], rows)


def _simple_sample(sample) -> bool:
    if isinstance(sample, dict):
        return False
    if isinstance(sample, list) and any(isinstance(item, (dict, list)) for item in sample):
        return False
    return len(literal(sample)) <= 80


def _return_tables(values: dict, path: str, samples: list) -> list[str]:
    rows = []
    nested = []
    for name, spec in values.items():
        spec = spec or {}
        text = paragraphs(spec.get("description"))
        if "sample" in spec:
            if _simple_sample(spec["sample"]):
                text.append(f"Sample: {code(literal(spec['sample']))}.")
            else:
                text.append("Sample: see below.")
                samples.append((f"{path}{name}", spec["sample"]))
        rows.append([code(name), type_label(spec), " ".join(paragraphs(spec.get("returned"))), " ".join(text)])
        if spec.get("contains"):
            child = f"{path}{name}" + ("[]" if spec.get("type") == "list" else "")
            nested.append((f"{path}{name}", child, spec))
    lines = table(["Key", "Type", "Returned", "Description"], rows)
    for label, child, spec in nested:
        lines += ["", _sub_heading(label, spec), ""]
        lines += _return_tables(spec["contains"], child + ".", samples)
    return lines


class _SampleDumper(yaml.SafeDumper):
    """YAML for samples as the collection writes it: indented sequences, multi-line strings as literal blocks."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_SampleDumper.add_representer(str, _represent_str)


def _returns(values: dict) -> list[str]:
    samples = []
    lines = _return_tables(values, "", samples)
    for name, sample in samples:
        dumped = yaml.dump(
            sample, Dumper=_SampleDumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100
        )
        lines += ["", f"Sample of {code(name)}:", "", "```yaml", dumped.rstrip("\n"), "```"]
    return lines


def _examples(examples: str | None) -> list[str]:
    if not examples or not examples.strip():
        return []
    body = examples.strip("\n")
    fence = "````" if "```" in body else "```"
    return ["", "## Examples", "", f"{fence}yaml", body, fence]


def render_page(docs: dict, fqcn: str, kind: str, source: str) -> str:
    """The Markdown page of one module or plugin from its DOCUMENTATION, EXAMPLES and RETURN."""
    doc = docs.get("DOCUMENTATION") or {}
    if doc.get("extends_documentation_fragment"):
        raise DocsError(f"{source}: documentation fragments are not rendered yet; extend {SCRIPT} first")
    lines = [PAGE_MARK.format(source=source), "", f"# {fqcn}", ""]
    lines.append(f"{kind.capitalize()}: {markup(doc.get('short_description', ''))}")
    if doc.get("version_added"):
        lines += ["", f"Added in version {escape_text(str(doc['version_added']))}."]
    description = paragraphs(doc.get("description"))
    if description:
        lines += ["", "## Synopsis"]
        for paragraph in description:
            lines += ["", paragraph]
    if doc.get("requirements"):
        lines += ["", "## Requirements", "", *_bullets(doc["requirements"])]
    options = dict(doc.get("options") or {})
    if kind in ("filter", "test") and "_input" in options:
        spec = options.pop("_input") or {}
        lines += ["", "## Input", ""]
        lines += table(["Type", "Required", "Description"], [_input_row(spec)])
    if options:
        heading, column = ("Options", "Option") if kind == "module" else ("Arguments", "Argument")
        lines += ["", f"## {heading}", "", *plugin_option_tables(options, column)]
    if doc.get("attributes"):
        lines += ["", "## Attributes", "", *_attributes(doc["attributes"])]
    if doc.get("notes"):
        lines += ["", "## Notes", "", *_bullets(doc["notes"])]
    if doc.get("seealso"):
        lines += ["", "## See also", "", *_see_also(doc["seealso"])]
    lines += _examples(docs.get("EXAMPLES"))
    returns = docs.get("RETURN") or {}
    if kind in ("filter", "test") and set(returns) == {"_value"}:
        spec = returns["_value"] or {}
        lines += ["", "## Return value", ""]
        lines += table(["Type", "Description"], [[type_label(spec), " ".join(paragraphs(spec.get("description")))]])
    elif returns:
        lines += ["", "## Return values", "", *_returns(returns)]
    if doc.get("author"):
        authors = [doc["author"]] if isinstance(doc["author"], str) else doc["author"]
        lines += ["", "## Authors", "", *(f"- {escape_text(str(author))}" for author in authors)]
    return "\n".join(lines) + "\n"


def _input_row(spec: dict) -> list[str]:
    return [type_label(spec), "yes" if spec.get("required") else "no", " ".join(paragraphs(spec.get("description")))]


def plugin_targets(root: pathlib.Path) -> dict[pathlib.Path, str]:
    collection = collection_name(root)
    targets = {}
    for path in sorted(root.glob("plugins/modules/*.py")):
        if path.name == "__init__.py":
            continue
        docs = read_python_docs(path)
        if "DOCUMENTATION" not in docs:
            raise DocsError(f"{path.relative_to(root)}: no DOCUMENTATION")
        name = docs["DOCUMENTATION"].get("module", path.stem)
        source = path.relative_to(root).as_posix()
        targets[root / "docs" / "modules" / f"{name}.md"] = render_page(docs, f"{collection}.{name}", "module", source)
    for directory in sorted(root.glob("plugins/*/")):
        if directory.name in NOT_PLUGINS or not directory.is_dir():
            continue
        kind = directory.name.removesuffix("_plugins")
        for path in sorted(directory.iterdir()):
            if path.suffix in (".yml", ".yaml"):
                docs = load_yaml(path) or {}
            elif path.suffix == ".py" and path.name != "__init__.py":
                docs = read_python_docs(path)
            else:
                continue
            if not isinstance(docs.get("DOCUMENTATION"), dict):
                continue
            name = docs["DOCUMENTATION"].get("name", path.stem)
            source = path.relative_to(root).as_posix()
            page = render_page(docs, f"{collection}.{name}", kind, source)
            targets[root / "docs" / "plugins" / f"{name}.md"] = page
    return targets


# ---------------------------------------------------------------------------------------------------------------
# Writing and checking.


def expected(root: pathlib.Path = ROOT) -> dict[pathlib.Path, str | None]:
    """Every generated file and the text it must have; None for a generated page whose source is gone."""
    targets: dict[pathlib.Path, str | None] = {}
    targets.update(role_targets(root))
    targets.update(plugin_targets(root))
    for folder in ("modules", "plugins"):
        for page in sorted((root / "docs" / folder).glob("*.md")):
            if page not in targets and page.read_text(encoding="utf-8").startswith(PAGE_MARK_PREFIX):
                targets[page] = None
    return targets


def stale(root: pathlib.Path = ROOT) -> list[tuple[pathlib.Path, str]]:
    """Each file that differs from what the specs give, with a unified diff of the change a write would make."""
    drift = []
    for path, text in expected(root).items():
        current = path.read_text(encoding="utf-8") if path.is_file() else ""
        wanted = text or ""
        if path.is_file() and text is not None and current == wanted:
            continue
        name = path.relative_to(root).as_posix()
        diff = difflib.unified_diff(
            current.splitlines(keepends=True),
            wanted.splitlines(keepends=True),
            fromfile=f"a/{name}" if path.is_file() else "/dev/null",
            tofile=f"b/{name}" if text is not None else "/dev/null",
        )
        drift.append((path, "".join(diff)))
    return drift


def check(root: pathlib.Path = ROOT) -> str:
    """A report of the stale files with their diffs, empty when every generated file is up to date."""
    report = []
    for path, diff in stale(root):
        report.append(f"stale: {path.relative_to(root).as_posix()}\n{diff}")
    return "\n".join(report)


def write(root: pathlib.Path = ROOT) -> list[pathlib.Path]:
    """Bring every generated file up to date; returns the files written or removed."""
    changed = []
    for path, text in expected(root).items():
        if text is None:
            path.unlink()
            changed.append(path)
        elif not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render role variable tables and plugin pages from their specs.")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 listing each stale file")
    args = parser.parse_args(argv)
    try:
        if args.check:
            report = check()
            if report:
                sys.stdout.write(report + f"\nRegenerate with: python {SCRIPT} (make docs)\n")
                return 1
            return 0
        for path in write():
            print(f"{'wrote' if path.is_file() else 'removed'} {path.relative_to(ROOT).as_posix()}")
    except DocsError as error:
        print(f"{SCRIPT}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
