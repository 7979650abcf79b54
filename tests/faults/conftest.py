"""Fixtures of the fault-injection suite: a daemon subprocess in a fresh directory."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import free_port
from harness.service import Service


@pytest.fixture
def service() -> Iterator[Service]:
    """A `replyclock run` in its own directory, killed and removed at the end."""
    workdir = Path(tempfile.mkdtemp(prefix="replyclock-fault-"))
    svc = Service(workdir=workdir, port=free_port())
    yield svc
    svc.kill()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def reference() -> Iterator[Service]:
    """A second directory for the clean `run --once` that a faulty run is compared with."""
    workdir = Path(tempfile.mkdtemp(prefix="replyclock-fault-reference-"))
    svc = Service(workdir=workdir, port=free_port())
    yield svc
    shutil.rmtree(workdir, ignore_errors=True)
