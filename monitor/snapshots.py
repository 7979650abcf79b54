"""Read-only views of the store for scrapes, through one reader connection.

The HTTP server starts a thread per request, so a reader per thread would open a new
connection for every scrape (and leave it to the garbage collector to close). Instead every
scrape takes its turn on one read-only connection; SQLite's WAL lets it read while the daemon
writes. A reader that fails is closed at once, and the next scrape opens another. What was
built from rows that did not change since the last scrape is kept and handed out again.
"""

from __future__ import annotations

import threading

from monitor.errors import StoreError
from monitor.model import MetricsSnapshot
from monitor.store import Store
from monitor.store.sqlite import SnapshotMemo, metrics_snapshot


class StoreSnapshots:
    """Everything a scrape reports, read through one shared read-only connection."""

    def __init__(self, store: Store) -> None:
        self.path = store.path
        self._lock = threading.Lock()
        self._reader: Store | None = None
        self._memo = SnapshotMemo()  # values built from rows, kept while the rows stay the same

    def __call__(self) -> MetricsSnapshot:
        """One consistent snapshot (a single read transaction) of what the metrics report."""
        with self._lock:
            if self._reader is None:
                self._reader = Store.open(self.path, readonly=True)
            try:
                return metrics_snapshot(self._reader, self._memo)
            except StoreError:
                self._reader.close()
                self._reader = None
                raise

    def close(self) -> None:
        """Close the reader; a later call opens a new one."""
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
