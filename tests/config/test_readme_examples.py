"""Every YAML example in the README is a config a user can paste: it loads without a problem.

The README's first example is a whole config; the source examples are entries of its
``sources:`` list and are loaded in its place; the rules example is a rules file.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import pytest

from monitor.config.loader import LoadedConfig, load_config, validate_document
from monitor.config.models import RulesFile
from monitor.config.yamlsource import load_yaml

REPO = Path(__file__).resolve().parents[2]
# The secret files the examples name under ${CREDENTIALS_DIRECTORY}.
CREDENTIALS = (
    "slack-token",
    "zendesk",
    "freshdesk",
    "helpscout",
    "github",
    "entra-secret",
    "google-key.json",
)
EMPTY_CALENDAR = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nEND:VCALENDAR\r\n"


def readme_yaml_blocks() -> list[tuple[int, str]]:
    """(line, text) of each ```yaml block of the README."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, match.start()) + 2, match.group(1))
        for match in re.finditer(r"^```yaml\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    ]


BLOCKS = readme_yaml_blocks()
WHOLE_CONFIG = BLOCKS[0][1]


def _environ(tmp_path: Path) -> dict[str, str]:
    credentials = tmp_path / "credentials"
    credentials.mkdir(exist_ok=True)
    for name in CREDENTIALS:
        (credentials / name).write_text("not-a-real-secret\n", encoding="utf-8")
    return {"CREDENTIALS_DIRECTORY": str(credentials), "IMAP_PASSWORD": "not-a-real-secret"}


def _load(tmp_path: Path, config_text: str) -> LoadedConfig:
    shutil.copytree(REPO / "rules", tmp_path / "rules")
    path = tmp_path / "config.yaml"
    path.write_text(config_text, encoding="utf-8")
    return load_config(path, _environ(tmp_path))


def test_the_readme_has_its_examples() -> None:
    assert len(BLOCKS) >= 6
    assert WHOLE_CONFIG.startswith("store:")


def test_the_whole_config_example_loads(tmp_path: Path) -> None:
    loaded = _load(tmp_path, WHOLE_CONFIG)
    assert [source.name for source in loaded.config.sources] == ["support-inbox"]


@pytest.mark.parametrize(
    ("line", "block"),
    [(line, block) for line, block in BLOCKS if block.startswith("- ")],
    ids=lambda value: f"README.md:{value}" if isinstance(value, int) else "",
)
def test_each_source_example_loads_in_place_of_the_sources(
    tmp_path: Path, line: int, block: str
) -> None:
    head = WHOLE_CONFIG.split("\nsources:\n")[0]
    text = f"{head}\nsources:\n{textwrap.indent(block, '  ')}"
    loaded = _load(tmp_path, text)
    assert len(loaded.config.sources) == block.count("\n- ") + 1, f"README.md:{line}"


def test_the_rules_example_is_a_valid_rules_file(tmp_path: Path) -> None:
    (line, block) = next((line, b) for line, b in BLOCKS if b.startswith("calendars:"))
    (tmp_path / "closed-days.ics").write_text(EMPTY_CALENDAR, encoding="utf-8")
    path = tmp_path / "rules.yaml"
    path.write_text(block, encoding="utf-8")
    rules, problems = validate_document(
        load_yaml(path, _environ(tmp_path)), RulesFile, {"base_dir": tmp_path}
    )
    assert problems == [], f"README.md:{line}: {problems}"
    assert isinstance(rules, RulesFile)
