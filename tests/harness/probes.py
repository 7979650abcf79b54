"""Waiting with a deadline, free loopback ports, and HTTP probes of a running daemon."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families


def wait_for(condition: Callable[[], object], timeout: float = 10.0, step: float = 0.05) -> bool:
    """Poll ``condition`` until it is true or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(
    port: int,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    timeout: float = 5.0,
    scheme: str = "http",
) -> tuple[int, str]:
    """(status, body) of a GET on the local port; (0, "") when nothing answers."""
    request = urllib.request.Request(f"{scheme}://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def metric_samples(
    text: str, prefix: str = "replyclock_"
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition whose name starts with ``prefix``, keyed by name and
    labels."""
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(prefix):
                found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found
