"""The metrics: every contract series present, totals that survive restarts, no personal data."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.config.loader import load_config
from monitor.config.rules import build_rulebook
from monitor.daemon import policy_infos
from monitor.engine import ActionRequest, Engine
from monitor.metrics import ReplyclockCollector, build_registry
from monitor.model import Direction, MailLocation, MessageEvent, ServiceStatus, ThreadRef
from monitor.snapshots import StoreSnapshots
from monitor.store import SourceSink, Store
from monitor.store.sqlite import record_poll

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # Monday 09:00 in Berlin
NOW = T0 + timedelta(hours=30)

RULES = """
calendars:
  office:
    timezone: Europe/Berlin
    hours: {mon-fri: ["09:00-17:00"]}
policies:
  - name: vip
    match: {sender_domain: [bigcorp.example]}
    calendar: office
    targets: {first_response: 1h, next_response: 2h}
    buckets: [10m, 1h, 4h]
  - name: standard
    calendar: 24x7
    targets: {first_response: 4h}
"""

CONTRACT = {
    "replyclock_awaiting_reply": ("gauge", {"source", "policy", "state"}),
    "replyclock_oldest_awaiting_reply_seconds": ("gauge", {"source", "policy"}),
    "replyclock_first_response_seconds": ("histogram", {"source", "policy"}),
    "replyclock_next_response_seconds": ("histogram", {"source", "policy"}),
    "replyclock_replies": ("counter", {"source", "policy", "target", "within_sla"}),
    "replyclock_sla_breaches": ("counter", {"source", "policy", "target"}),
    "replyclock_closed_without_reply": ("counter", {"source", "policy", "target"}),
    "replyclock_dismissed": ("counter", {"source", "policy", "target"}),
    "replyclock_policy_target_seconds": ("gauge", {"policy", "target"}),
    "replyclock_source_up": ("gauge", {"source"}),
    "replyclock_source_last_success_timestamp_seconds": ("gauge", {"source"}),
    "replyclock_poll_duration_seconds": ("gauge", {"source"}),
    "replyclock_alerts_sent": ("counter", {"channel", "kind"}),
    "replyclock_alert_delivery_failures": ("counter", {"channel"}),
    "replyclock_scheduler_lag_seconds": ("gauge", set()),
    "replyclock_replies_missing": ("gauge", {"source"}),
    "replyclock_store_up": ("gauge", set()),
    "replyclock_build_info": ("gauge", {"version"}),
}


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "rules.yaml").write_text(RULES)
    config = tmp_path / "replyclock.yaml"
    config.write_text(
        "store: {path: store.db}\nrules: [rules.yaml]\n"
        "sources:\n  - {name: inbox, type: maildir, path: mail}\n"
        "  - {name: quiet, type: maildir, path: mail2}\n"
    )
    return config, tmp_path / "store.db"


def message(
    identity: str, minutes: int, direction: Direction, sender: str, refs: tuple[str, ...] = ()
) -> MessageEvent:
    return MessageEvent(
        source="inbox",
        identity=identity,
        timestamp=T0 + timedelta(minutes=minutes),
        direction=direction,
        reason="test",
        author=sender,
        subject="Secret project Phoenix invoice",
        thread=ThreadRef(message_id=identity, references=refs, customer=sender),
        location=MailLocation(folder="INBOX", uidvalidity=1, uid=abs(hash(identity)) % 10**6),
    )


def fill(db: Path, config: Path) -> None:
    """vip: answered after 30m, answered late after 2h; standard: one waiting 30h (breached)."""
    loaded = load_config(config)
    store = Store.open(db)
    try:
        SourceSink(store, "inbox").accept(
            [
                message("v1@bigcorp.example", 0, Direction.INBOUND, "ann@bigcorp.example"),
                message(
                    "r1@acme",
                    30,
                    Direction.OUTBOUND,
                    "support@acme.example",
                    ("v1@bigcorp.example",),
                ),
                message("v2@bigcorp.example", 60, Direction.INBOUND, "bob@bigcorp.example"),
                message(
                    "r2@acme",
                    180,
                    Direction.OUTBOUND,
                    "support@acme.example",
                    ("v2@bigcorp.example",),
                ),
                message("s1@shop.example", 0, Direction.INBOUND, "carol@shop.example"),
            ],
            None,
            NOW,
        )
        record_poll(store, "inbox", ok=True, duration=0.25, error=None, now=NOW)
        Engine(store, build_rulebook(loaded)).evaluate(NOW)
    finally:
        store.close()


def scrape(db: Path, config: Path) -> str:
    loaded = load_config(config)
    rules = build_rulebook(loaded)
    writer = Store.open(db)  # the snapshot reader needs the file; the writer stands for the daemon
    try:
        collector = ReplyclockCollector(
            snapshot=StoreSnapshots(writer),
            sources=["inbox", "quiet"],
            policies=policy_infos(rules),
            clock=lambda: NOW,
            service=lambda: ServiceStatus(replies_missing=(("inbox", False), ("quiet", True))),
        )
        return generate_latest(build_registry(collector)).decode()
    finally:
        writer.close()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def test_every_contract_series_is_exported_with_its_labels(setup: tuple[Path, Path]) -> None:
    """A scrape carries every DESIGN.md series with exactly its labels, plus process metrics."""
    config, db = setup
    fill(db, config)
    families = {f.name: f for f in text_string_to_metric_families(scrape(db, config))}
    for name, (kind, labels) in CONTRACT.items():
        assert families[name].type == kind, name
        label_sets = {frozenset(s.labels) - {"le"} for s in families[name].samples}
        if name not in ("replyclock_alerts_sent", "replyclock_alert_delivery_failures"):
            assert label_sets == {frozenset(labels)}, name
    assert "process_cpu_seconds" in families
    missing = {s.labels["source"]: s.value for s in families["replyclock_replies_missing"].samples}
    assert missing == {"inbox": 0, "quiet": 1}


def test_values_follow_the_clock_history(setup: tuple[Path, Path]) -> None:
    """Counts, histogram buckets and gauges are exactly what the messages imply."""
    config, db = setup
    fill(db, config)
    found = samples(scrape(db, config))
    vip = {"source": "inbox", "policy": "vip"}
    assert (
        value(found, "replyclock_replies_total", **vip, target="first_response", within_sla="true")
        == 1
    )
    assert (
        value(found, "replyclock_replies_total", **vip, target="first_response", within_sla="false")
        == 1
    )
    assert value(found, "replyclock_sla_breaches_total", **vip, target="first_response") == 1
    # 30 min -> bucket 1h; 2h -> bucket 4h (custom bounds 10m, 1h, 4h)
    buckets = {
        le: value(found, "replyclock_first_response_seconds_bucket", **vip, le=le)
        for le in ("600.0", "3600.0", "14400.0", "+Inf")
    }
    assert buckets == {"600.0": 0, "3600.0": 1, "14400.0": 2, "+Inf": 2}
    assert value(found, "replyclock_first_response_seconds_sum", **vip) == 1800 + 7200
    standard = {"source": "inbox", "policy": "standard"}
    assert value(found, "replyclock_awaiting_reply", **standard, state="breached") == 1
    assert value(found, "replyclock_awaiting_reply", **standard, state="ok") == 0
    assert value(found, "replyclock_oldest_awaiting_reply_seconds", **standard) == 30 * 3600
    assert value(found, "replyclock_awaiting_reply", source="quiet", policy="vip", state="ok") == 0
    assert (
        value(found, "replyclock_policy_target_seconds", policy="standard", target="next_response")
        == 4 * 3600
    )
    assert value(found, "replyclock_source_up", source="inbox") == 1
    assert value(found, "replyclock_source_up", source="quiet") == 0
    assert (
        value(found, "replyclock_source_last_success_timestamp_seconds", source="inbox")
        == NOW.timestamp()
    )
    assert value(found, "replyclock_poll_duration_seconds", source="inbox") == 0.25


def test_totals_survive_a_restart_without_counting_twice(setup: tuple[Path, Path]) -> None:
    """Evaluating again after a restart (a new engine on the same store) leaves the counters
    and histograms exactly as they were."""
    config, db = setup
    fill(db, config)
    before = {
        k: v for k, v in samples(scrape(db, config)).items() if not k[0].startswith("process_")
    }
    store = Store.open(db)
    try:
        Engine(store, build_rulebook(load_config(config))).evaluate(NOW + timedelta(minutes=1))
    finally:
        store.close()
    after = {
        k: v for k, v in samples(scrape(db, config)).items() if not k[0].startswith("process_")
    }
    counters = {k for k in before if k[0].endswith(("_total", "_bucket", "_count", "_sum"))}
    assert counters
    assert {k: after[k] for k in counters} == {k: before[k] for k in counters}


def test_a_dismissed_clock_is_counted_once_and_stays_counted(setup: tuple[Path, Path]) -> None:
    """A lead dismisses the breached standard conversation: replyclock_dismissed_total counts
    it (its breach stays counted, it no longer waits), and evaluating again after a restart
    counts nothing twice."""
    config, db = setup
    fill(db, config)
    store = Store.open(db)
    try:
        outcome = Engine(store, build_rulebook(load_config(config))).act(
            ActionRequest(kind="dismiss", conversation_id=3, actor="alice", via="cli"), NOW
        )
    finally:
        store.close()
    for minute in (1, 2):  # the daemon takes the dismissal in, then a restart evaluates again
        store = Store.open(db)
        try:
            Engine(store, build_rulebook(load_config(config))).evaluate(
                NOW + timedelta(minutes=minute)
            )
        finally:
            store.close()
    found = samples(scrape(db, config))

    standard = {"source": "inbox", "policy": "standard", "target": "first_response"}
    assert outcome.action is not None
    assert value(found, "replyclock_dismissed_total", **standard) == 1
    assert value(found, "replyclock_sla_breaches_total", **standard) == 1
    assert value(found, "replyclock_closed_without_reply_total", **standard) == 0
    waiting = value(
        found, "replyclock_awaiting_reply", source="inbox", policy="standard", state="breached"
    )
    assert waiting == 0
    vip = {"source": "inbox", "policy": "vip", "target": "first_response"}
    assert value(found, "replyclock_dismissed_total", **vip) == 0


def test_no_label_carries_an_address_subject_or_id(setup: tuple[Path, Path]) -> None:
    """Nothing personal reaches a label: no address, no subject word, no message id."""
    config, db = setup
    fill(db, config)
    text = scrape(db, config)
    labels = " ".join(re.findall(r"\{([^}]*)\}", text))
    for secret in ("@", "Phoenix", "invoice", "bigcorp", "v1", "r1", "ann", "carol"):
        assert secret not in labels, secret


README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_lists_exactly_the_exported_series(setup: tuple[Path, Path]) -> None:
    """The README's metrics table names every replyclock series a scrape exposes, with the same
    type and labels, and nothing else."""
    config, db = setup
    fill(db, config)
    families = {
        f.name: (f.type, frozenset().union(*(frozenset(s.labels) - {"le"} for s in f.samples)))
        for f in text_string_to_metric_families(scrape(db, config))
        if f.name.startswith("replyclock_")
    }
    documented = {}
    for match in re.finditer(
        r"^\| `(replyclock_\w+)` \| (\w+) \| ([\w, ]*) \|", README.read_text(), re.MULTILINE
    ):
        name, kind, labels = match.groups()
        name = name.removesuffix("_total") if kind == "counter" else name
        documented[name] = (kind, frozenset(label.strip() for label in labels.split(",")))
    assert documented.keys() == families.keys()
    for name, (kind, labels) in families.items():
        # A family with no sample yet (no alert channel in this config) shows no labels.
        assert documented[name] == (kind, labels or documented[name][1]), name
