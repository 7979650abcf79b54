"""Fixtures of the alert tests: the store, at the path the config of ``alerts.helpers`` names."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.store import Store


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "var" / "replyclock.db"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    opened = Store.open(db)
    yield opened
    opened.close()
