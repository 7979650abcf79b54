"""What two stores must agree on after reading the same mail: the conversations, every clock,
and the numbers the metrics are made of, keyed by content rather than by row ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monitor.store import Store
from monitor.store.sqlite import metrics_snapshot

CURRENT = (
    "source",
    "policy",
    "state",
    "clock_kind",
    "clock_started_at",
    "target_seconds",
    "due_at",
)
CLOCK = (
    "seq", "kind", "started_at", "stopped_at", "stop_reason", "responder", "target_seconds",
    "state", "breached", "due_at",
)  # fmt: skip


def store_facts(db: Path) -> dict[str, Any]:
    """Conversations (by their messages' identities) with their current clock and history,
    the messages with direction and time, and the metrics snapshot's counts and totals."""
    store = Store.open(db, readonly=True)
    try:
        conn = store.conn
        members: dict[int, list[str]] = {}
        messages = {}
        for cid, source, identity, timestamp, direction, removed in conn.execute(
            "SELECT conversation_id, source, identity, timestamp, direction, removed_at "
            "FROM messages"
        ):
            members.setdefault(cid, []).append(identity)
            messages[(source, identity)] = (timestamp, direction, removed is not None)
        conversations = {}
        for cid, ids in members.items():
            current = conn.execute(
                f"SELECT {', '.join(CURRENT)} FROM conversations WHERE id = ?", (cid,)
            ).fetchone()
            clocks = conn.execute(
                f"SELECT {', '.join(CLOCK)}, business_seconds FROM clocks "
                "WHERE conversation_id = ? ORDER BY seq",
                (cid,),
            ).fetchall()
            # A running clock's business time grows with the instant it was measured at.
            history = tuple((*row[:-1], row[-1] if row[3] is not None else None) for row in clocks)
            conversations[frozenset(ids)] = (tuple(current), history)
        snapshot = metrics_snapshot(store)
        return {
            "messages": messages,
            "conversations": conversations,
            "awaiting": sorted(snapshot.awaiting),
            "oldest": sorted(snapshot.oldest),
            # Bucket counts come in no particular order: compare them sorted.
            "totals": sorted(
                (
                    t.source,
                    t.policy,
                    t.kind,
                    t.replies_within,
                    t.replies_late,
                    t.breaches,
                    t.closed,
                    t.response_sum,
                    tuple(sorted(t.buckets)),
                )
                for t in snapshot.totals
            ),
        }
    finally:
        store.close()


def _name(item: object) -> object:
    return sorted(item) if isinstance(item, frozenset) else item


def differences(a: dict[str, Any], b: dict[str, Any], limit: int = 5) -> list[str]:
    """A few readable differences between two ``store_facts``, for assertion messages."""
    found: list[str] = []
    for key in a.keys() | b.keys():
        left, right = a.get(key), b.get(key)
        if left == right:
            continue
        if isinstance(left, dict) and isinstance(right, dict):
            for item in sorted(left.keys() ^ right.keys(), key=str)[:limit]:
                side = "first" if item in left else "second"
                found.append(f"{key}: {_name(item)} only in the {side}")
            for item in sorted(
                (k for k in left.keys() & right.keys() if left[k] != right[k]), key=str
            )[:limit]:
                found.append(f"{key}: {_name(item)}: {left[item]} != {right[item]}")
        else:
            found.append(f"{key}: {left} != {right}")
    return found
