"""Read a YAML file into plain data while remembering the line of every key.

Config errors must name the file, the line and the key path, so the loader composes YAML nodes
itself (PyYAML's marks carry line numbers) instead of calling ``yaml.safe_load``. It also
expands ``${ENV_VAR}`` references and refuses duplicate keys, which PyYAML silently accepts.

A string may hold ``${NAME}`` or ``${NAME:-default}`` (the default is taken as written);
``$${`` stands for a literal ``${``. Any other ``${`` is a problem: a typo such as ``${BROKEN``
must not become a password. Problems never quote a scalar's value, which may be a secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

from monitor.errors import ConfigProblem

KeyPath = tuple[str | int, ...]
# ``$${`` (an escaped ``${``), a whole reference, or a bare ``${`` that starts no reference.
_ENV_TOKEN = re.compile(
    r"(?P<escape>\$\$\{)|\$\{(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\})?"
)
BAD_REFERENCE = (
    "${ does not start an environment reference (value not shown: it may be a secret); "
    "write ${NAME} or ${NAME:-default}, where NAME is letters, digits and underscores "
    "not starting with a digit, or write $${ for a literal ${"
)


def format_key_path(path: KeyPath) -> str:
    """Render ``("sources", 0, "port")`` as ``sources[0].port``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass(slots=True)
class YamlDocument:
    """A parsed YAML file: its data, the line of each key path, and problems found on the way."""

    file: str
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    problems: list[ConfigProblem] = field(default_factory=list)

    def line_of(self, path: KeyPath) -> int:
        """Line of ``path``, or of its closest ancestor that has one (1 for the document)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return 1

    def problem(self, path: KeyPath, message: str) -> ConfigProblem:
        """A problem located at ``path`` in this document."""
        return ConfigProblem(self.file, self.line_of(path), format_key_path(path), message)


class _Builder:
    """Turns a composed YAML node tree into Python data, recording lines as it goes."""

    def __init__(self, doc: YamlDocument, environ: Mapping[str, str]) -> None:
        self.doc = doc
        self.environ = environ
        self.constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        self.doc.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self.construct(key_node, path)
                key_text = str(key) if not isinstance(key, str) else key
                child = (*path, key_text)
                if key_text in result:
                    line = key_node.start_mark.line + 1
                    self.doc.problems.append(
                        ConfigProblem(
                            self.doc.file,
                            line,
                            format_key_path(child),
                            "duplicate key; each key may appear once in a mapping, "
                            "remove one of them",
                        )
                    )
                    continue
                self.doc.lines[child] = key_node.start_mark.line + 1
                result[key_text] = self.build(value_node, child)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        value = self.construct(node, path)
        if isinstance(value, str) and "${" in value:
            return self.expand_env(value, path)
        return value

    def construct(self, node: yaml.Node, path: KeyPath) -> Any:
        """The Python value of a scalar; its source text if its tag does not fit (``!!int x``)."""
        try:
            return self.constructor.construct_object(node)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError):
            # The library's message quotes the value, which may be a secret: say what to fix.
            tag = node.tag.replace("tag:yaml.org,2002:", "!!", 1)
            implicit = isinstance(node, yaml.ScalarNode) and node.tag == self.implicit_tag(node)
            fix = (
                "quote it to make it a string"
                if implicit
                else f"remove the {tag} tag, or write a value that fits it"
            )
            self.doc.problems.append(
                self.doc.problem(
                    path,
                    f"the value cannot be read as {tag} (value not shown: it may be a "
                    f"secret); {fix}",
                )
            )
            return str(node.value)

    def implicit_tag(self, node: yaml.ScalarNode) -> str | None:
        """The tag YAML gives ``node`` as written (``!!timestamp`` for 2024-13-45); None if
        it is quoted, which makes it a string."""
        if node.style is not None:
            return None
        resolve = cast(  # PyYAML's stubs leave it untyped
            "Callable[[type[yaml.Node], str, tuple[bool, bool]], str]", self.constructor.resolve
        )
        return resolve(yaml.ScalarNode, node.value, (True, False))

    def expand_env(self, text: str, path: KeyPath) -> str:
        """Replace ``${NAME}`` and ``${NAME:-default}``, unescape ``$${``, report a bad ``${``."""
        bad_reference = False

        def replace(match: re.Match[str]) -> str:
            nonlocal bad_reference
            if match.group("escape"):
                return "${"
            name, default = match.group("name"), match.group("default")
            if name is None:
                bad_reference = True
                return match.group()
            if name in self.environ:
                return self.environ[name]
            if default is not None:
                return default
            self.doc.problems.append(
                self.doc.problem(
                    path,
                    f"environment variable {name} is not set; set it, "
                    f"or write ${{{name}:-default}} to give a default",
                )
            )
            return ""

        expanded = _ENV_TOKEN.sub(replace, text)
        if bad_reference:
            self.doc.problems.append(self.doc.problem(path, BAD_REFERENCE))
        return expanded


def load_yaml(path: Path, environ: Mapping[str, str] | None = None) -> YamlDocument:
    """Parse ``path``; syntax errors and unreadable files become problems, never exceptions."""
    doc = YamlDocument(file=str(path), data=None)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        doc.problems.append(ConfigProblem(str(path), 0, "", f"cannot read file: {exc.strerror}"))
        return doc
    except UnicodeDecodeError as exc:
        doc.problems.append(
            ConfigProblem(str(path), 0, "", f"file is not valid UTF-8 text ({exc.reason})")
        )
        return doc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else 0
        what = exc.problem or "invalid YAML"
        doc.problems.append(ConfigProblem(str(path), line, "", f"YAML syntax error: {what}"))
        return doc
    except yaml.YAMLError as exc:
        doc.problems.append(ConfigProblem(str(path), 0, "", f"YAML syntax error: {exc}"))
        return doc
    if node is None:
        doc.data = {}
        return doc
    doc.data = _Builder(doc, os.environ if environ is None else environ).build(node, ())
    return doc
