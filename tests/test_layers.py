"""The layers of DESIGN.md hold: a pure core, adapters that never reach into each other."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "monitor"

# The pure core: standard library and itself only (no I/O library, no adapter).
CORE = (
    "monitor.model",
    "monitor.errors",
    "monitor.durations",
    "monitor.conversations",
    "monitor.sla",
    "monitor.mail",
)
# Adapters may use the core, the config models and logging, and their own package.
SHARED_BY_ADAPTERS = (*CORE, "monitor.config", "monitor.logs")
ADAPTERS = ("monitor.sources", "monitor.store", "monitor.metrics", "monitor.alerts")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            pytest.fail(f"{path}: use absolute imports (from monitor...), not relative ones")
    return found


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_module_respects_its_layer(path: Path) -> None:
    """Core modules import only the standard library and the core; adapters never import
    another adapter's package."""
    name = module_name(path)
    for imported in imports_of(path):
        top = imported.split(".")[0]
        if within(name, CORE):
            assert top in sys.stdlib_module_names or within(imported, CORE), (
                f"{name} is pure core but imports {imported}"
            )
        for adapter in ADAPTERS:
            if (
                within(name, (adapter,))
                and imported != "monitor"
                and within(imported, ("monitor",))
            ):
                assert within(imported, (*SHARED_BY_ADAPTERS, adapter)), (
                    f"{name} (adapter {adapter}) imports {imported}"
                )


def test_the_walk_sees_the_modules_it_guards() -> None:
    """The layer check really covers the core and the adapters (no silent empty walk)."""
    names = {module_name(p) for p in MODULES}
    assert {
        "monitor.sla.calendar",
        "monitor.mail.classify",
        "monitor.sources.imap",
        "monitor.store.sqlite",
    } <= names
