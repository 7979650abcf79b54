"""Zendesk's incremental ticket-event export, read as audits.

``GET /api/v2/incremental/ticket_events.json?start_time=<unix>&include=comment_events`` answers
up to 1,000 ticket updates a page, of every ticket at once: ``{"ticket_events": [...],
"count", "end_time", "next_page", "end_of_stream"}``. The next page (and the next poll) asks
again with ``start_time`` set to ``end_time``, so the updates of that one second come twice and
the store keeps them once.

Each ticket event is one update of a ticket (what the audits API calls an audit): ``id``,
``ticket_id``, ``created_at``, ``timestamp``, ``updater_id`` (who made the update), ``via`` (a
label such as "Web form") and ``child_events``. With the ``comment_events`` sideload a comment
is a child event in the audits' shape (``"type": "Comment"``, ``author_id``, ``public``,
``body``, ``plain_body``, ``html_body``, ``attachments``, ``audit_id``, ``via``); without it
only ``comment_present`` / ``comment_public`` say a comment was there. A field set or changed
is a child event that names the field as its key: ``{"status": "pending", "previous_value":
"open", "event_type": "Change"}``.

``audit_from_ticket_event`` rewrites a ticket event into an audit, so that one classifier
(``zendesk.events_from_audits``) serves both reads and both store the same events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TICKET_EVENTS_PATH = "/api/v2/incremental/ticket_events.json"
TICKET_EVENTS_SIDELOAD = "comment_events"
TICKET_EVENTS_PAGE = 1000  # Zendesk's page size for this export
# Zendesk leaves out the updates of the last minute and refuses a start_time that recent.
HELD_BACK_S = 60

COMMENT_TYPES = frozenset({"Comment", "VoiceComment"})
# The ticket event's own ``via`` is a label; a comment without a via of its own falls back to it.
VIA_LABELS: Mapping[str, Mapping[str, Any]] = {
    "Rule": {"channel": "rule", "source": {}},
    "Ticket sharing": {"channel": "ticket_sharing", "source": {}},
}

Json = Mapping[str, Any]


def audit_from_ticket_event(item: Json) -> dict[str, Any]:
    """One ticket event as the audit it records: comments as they are, and status set or
    changed as ``{"type", "field_name": "status", "value"}``. The audit's id is the one its
    comments name (``audit_id``), else the ticket event's own id."""
    events: list[dict[str, Any]] = []
    audit_id = item.get("id")
    for child in item.get("child_events") or ():
        if not isinstance(child, Mapping):
            continue
        kind = child.get("type") or child.get("event_type")
        if kind in COMMENT_TYPES and "author_id" in child:
            events.append({**child, "type": kind})
            if isinstance(child.get("audit_id"), int):
                audit_id = child["audit_id"]
        elif kind in ("Create", "Change"):
            event: dict[str, Any] = {"id": child.get("id"), "type": kind}
            if "status" in child:
                event.update(field_name="status", value=child["status"])
            events.append(event)
    via = item.get("via")
    return {
        "id": audit_id,
        "ticket_id": item.get("ticket_id"),
        "created_at": item.get("created_at"),
        "author_id": item.get("updater_id"),
        "via": via if isinstance(via, Mapping) else VIA_LABELS.get(str(via), {}),
        "events": events,
    }


def comment_left_out(item: Json) -> bool:
    """Whether a ticket event says it holds a comment but does not carry it (the answer came
    without the comment_events sideload): that ticket's comments must be read another way."""
    children = [c for c in item.get("child_events") or () if isinstance(c, Mapping)]
    flagged = any(c.get("comment_present") is True for c in children)
    carried = any(
        (c.get("type") or c.get("event_type")) in COMMENT_TYPES and "author_id" in c
        for c in children
    )
    return flagged and not carried


def people_named(audits: list[dict[str, Any]]) -> set[int]:
    """The user ids the audits name (comment authors and updaters), without the system user."""
    named: set[int] = set()
    for audit in audits:
        if isinstance(audit.get("author_id"), int):
            named.add(audit["author_id"])
        named.update(e["author_id"] for e in audit["events"] if isinstance(e.get("author_id"), int))
    return {user for user in named if user > 0}
