"""The text /metrics writes itself is exactly what prometheus-client writes for the same
families, in both formats, scrape after scrape, as the store and the clock move on."""

from __future__ import annotations

import gzip
import re
import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families

from monitor.config.loader import load_config
from monitor.config.rules import build_rulebook
from monitor.engine import Engine
from monitor.errors import ConfigError
from monitor.metrics import PolicyInfo, ReplyclockCollector, build_registry
from monitor.model import Direction, MailLocation, MessageEvent, ServiceStatus, ThreadRef
from monitor.sla.calendar import BusinessCalendar
from monitor.snapshots import StoreSnapshots
from monitor.store import SourceSink, Store
from monitor.store.sqlite import record_poll
from monitor.web import make_app

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

PROMETHEUS_ACCEPT = (  # what Prometheus 2.x and 3.x send
    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;"
    "version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)


def message(
    source: str,
    identity: str,
    minutes: int,
    direction: Direction,
    sender: str,
    refs: tuple[str, ...] = (),
) -> MessageEvent:
    return MessageEvent(
        source=source,
        identity=identity,
        timestamp=T0 + timedelta(minutes=minutes),
        direction=direction,
        reason="test",
        author=sender,
        subject=f"Question {identity}",
        thread=ThreadRef(message_id=identity, references=refs, customer=sender),
        location=MailLocation(folder="INBOX", uidvalidity=1, uid=abs(hash(identity)) % 10**6),
    )


def conversation(source: str, n: int, asked: int, answered: int | None) -> list[MessageEvent]:
    """A customer's mail at minute ``asked``, answered at minute ``answered`` (or not)."""
    domain = "bigcorp.example" if n % 2 else "shop.example"
    question = f"{source}-{n}@{domain}"
    events = [message(source, question, asked, Direction.INBOUND, f"c{n}@{domain}")]
    if answered is not None:
        events.append(
            message(
                source,
                f"r-{question}",
                answered,
                Direction.OUTBOUND,
                "team@acme.example",
                (question,),
            )
        )
    return events


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Path, Store, list[PolicyInfo]]]:
    """A store with answered, late and waiting conversations in three sources (one of them no
    longer configured), and the policies the metrics know (one of them with no data)."""
    (tmp_path / "rules.yaml").write_text(RULES)
    config = tmp_path / "replyclock.yaml"
    config.write_text(
        "store: {path: store.db}\nrules: [rules.yaml]\n"
        "sources:\n  - {name: inbox, type: maildir, path: mail}\n"
    )
    rules = build_rulebook(load_config(config))
    store = Store.open(tmp_path / "store.db")
    for source, plan in {
        "inbox": [(0, 30), (60, 180), (0, None), (300, None), (5, 2000)],
        "billing": [(10, None), (20, 25), (40, 500)],
        "retired": [(0, 90)],
    }.items():
        events = [e for n, (a, r) in enumerate(plan) for e in conversation(source, n, a, r)]
        SourceSink(store, source).accept(events, None, NOW)
        record_poll(store, source, ok=source != "billing", duration=0.25, error=None, now=NOW)
    Engine(store, rules).evaluate(NOW)
    infos = [
        PolicyInfo(
            name=p.name,
            calendar=rules.calendar_for(p),
            targets={k: p.target(k) for k in ("first_response", "next_response")},
            buckets=rules.buckets_for(p.name),
        )
        for p in rules.policies.all
    ]
    odd = PolicyInfo(  # a name that needs escaping in a label value
        name='odd "quoted" \\ name',
        calendar=BusinessCalendar.always_open(),
        targets={"first_response": 60, "next_response": 120},
        buckets=(60, 600),
    )
    try:
        yield tmp_path / "store.db", store, [*infos, odd]
    finally:
        store.close()


def collector_for(
    store: Store, policies: list[PolicyInfo], clock: Callable[[], datetime], **kw: Any
) -> ReplyclockCollector:
    return ReplyclockCollector(
        snapshot=StoreSnapshots(store),
        sources=["inbox", "billing", "quiet"],
        policies=policies,
        channels=["#support"],
        clock=clock,
        service=lambda: ServiceStatus(
            scheduler_lag_seconds=1.5, replies_missing=(("inbox", False), ("billing", True))
        ),
        **kw,
    )


def assert_same_as_prometheus_client(collector: ReplyclockCollector) -> str:
    """Both formats byte for byte against prometheus-client's exposition; the text returned."""
    text = collector.exposition(openmetrics=False)
    assert text == generate_latest(collector).decode()
    openmetrics = collector.exposition(openmetrics=True) + "# EOF\n"
    assert openmetrics == generate_openmetrics(collector).decode()
    return text


@pytest.mark.parametrize("by_source", [True, False], ids=["by_source", "by_policy"])
def test_the_written_text_is_prometheus_clients_byte_for_byte(
    setup: tuple[Path, Store, list[PolicyInfo]], by_source: bool
) -> None:
    """Every family, label and value: configured and leftover sources, a policy the config no
    longer has (``standard`` left out here), a label value that needs escaping."""
    _, store, policies = setup
    known = [p for p in policies if p.name != "standard"]
    collector = collector_for(store, known, lambda: NOW, histograms_by_source=by_source)
    text = assert_same_as_prometheus_client(collector)
    assert 'source="retired"' in text
    assert 'policy="standard"' in text
    assert r'policy="odd \"quoted\" \\ name"' in text
    assert ('replyclock_first_response_seconds_bucket{le="600.0",policy="vip"}' in text) is (
        not by_source
    )


def test_scrapes_stay_exact_as_the_clock_and_the_store_move(
    setup: tuple[Path, Store, list[PolicyInfo]],
) -> None:
    """Scrape after scrape (over a night and an office morning, so waits grow in business
    seconds and stop overnight), then after new replies and a reload with new policy objects,
    the kept lines never drift from a fresh exposition."""
    _, store, policies = setup
    now = [NOW]
    collector = collector_for(store, policies, lambda: now[0])
    waits = set()
    for step in range(40):  # 40 x 47 min: 31 hours
        now[0] = NOW + timedelta(minutes=47 * step, seconds=step % 3)
        text = assert_same_as_prometheus_client(collector)
        waits.add(
            re.findall(r'oldest_awaiting_reply_seconds\{policy="vip",source="inbox"} (\S+)', text)[
                0
            ]
        )
    assert len(waits) > 10  # the wait really moved
    SourceSink(store, "billing").accept(conversation("billing", 0, 10, 1900), None, now[0])
    rules_changed = [replace(p, buckets=(60, 3600)) for p in policies]
    Engine(store, build_rulebook_for(setup[0].parent)).evaluate(now[0])
    assert_same_as_prometheus_client(collector)
    collector.policies = {p.name: p for p in rules_changed}
    collector.sources = ["inbox"]
    assert_same_as_prometheus_client(collector)


def build_rulebook_for(directory: Path) -> Any:
    return build_rulebook(load_config(directory / "replyclock.yaml"))


def call(app: Any, path: str, headers: dict[str, str]) -> tuple[str, dict[str, str], bytes]:
    """One request to a WSGI app: status, headers and body."""
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path.split("?", maxsplit=1)[0]}
    environ["QUERY_STRING"] = path.partition("?")[2]
    environ.update({"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()})
    answer: dict[str, Any] = {}

    def start_response(status: str, response_headers: Iterable[tuple[str, str]]) -> None:
        answer["status"], answer["headers"] = status, dict(response_headers)

    body = b"".join(app(environ, start_response))
    return answer["status"], answer["headers"], body


def test_content_negotiation_and_gzip_follow_prometheus_client(
    setup: tuple[Path, Store, list[PolicyInfo]],
) -> None:
    """Prometheus's Accept header gets OpenMetrics (ending in one ``# EOF``), no Accept header
    the text format, gzip when accepted; both parse, with the process metrics after ours."""
    _, store, policies = setup
    registry = build_registry(collector_for(store, policies, lambda: NOW))
    app = make_app(registry, lambda: (True, "ready"))
    status, headers, body = call(app, "/metrics", {})
    assert status == "200 OK"
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name for f in text_string_to_metric_families(body.decode())}
    assert {"replyclock_awaiting_reply", "replyclock_replies", "process_cpu_seconds"} <= families
    status, headers, body = call(
        app, "/metrics", {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}
    )
    assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(body).decode()
    assert text.count("# EOF") == 1
    assert text.endswith("# EOF\n")
    families = {f.name for f in parse_openmetrics(text)}
    assert {"replyclock_first_response_seconds", "python_info"} <= families


def test_a_filtered_scrape_is_served_by_prometheus_client(
    setup: tuple[Path, Store, list[PolicyInfo]],
) -> None:
    """``name[]`` (Prometheus' federation-style filter) returns only the named families."""
    _, store, policies = setup
    app = make_app(build_registry(collector_for(store, policies, lambda: NOW)), lambda: (True, ""))
    _, _, body = call(app, "/metrics?name[]=replyclock_source_up&name[]=process_open_fds", {})
    found = {
        (s.name, s.labels.get("source"), s.value)
        for f in text_string_to_metric_families(body.decode())
        for s in f.samples
    }
    assert {name for name, _, _ in found} == {"replyclock_source_up", "process_open_fds"}
    assert {(source, up) for name, source, up in found if source} == {
        ("billing", 0),
        ("inbox", 1),
        ("quiet", 0),
        ("retired", 1),
    }


def test_promtool_accepts_the_scrape(
    setup: tuple[Path, Store, list[PolicyInfo]], promtool: str
) -> None:
    """`promtool check metrics` finds the text format valid, lint included."""
    _, store, policies = setup
    app = make_app(build_registry(collector_for(store, policies, lambda: NOW)), lambda: (True, ""))
    _, _, body = call(app, "/metrics", {})
    result = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, b"")


def series_per_source(text: str, source: str) -> int:
    return sum(1 for line in text.splitlines() if f'source="{source}"' in line)


@pytest.mark.parametrize(
    ("by_source", "per_pair"),
    [(True, 14 + 2 * (3 + 3)), (False, 14)],  # vip has 3 bounds: 3 buckets + +Inf, count, sum
    ids=["by_source", "by_policy"],
)
def test_series_count_per_source_is_as_documented(
    setup: tuple[Path, Store, list[PolicyInfo]], by_source: bool, per_pair: int
) -> None:
    """A source with one policy has 3 health series, 1 replies_missing series (mail sources)
    and, per policy, 14 gauge and counter series plus, by source, 2 x (bounds + 3) histogram
    series: the counts the README gives."""
    _, store, policies = setup
    vip = [p for p in policies if p.name == "vip"]
    collector = collector_for(store, vip, lambda: NOW, histograms_by_source=by_source)
    collector.sources = ["quiet"]
    collector.service = lambda: ServiceStatus(replies_missing=(("quiet", False),))
    text = collector.exposition()
    assert series_per_source(text, "quiet") == 3 + 1 + per_pair
    per_policy = sum(
        1
        for line in text.splitlines()
        if re.search(r'_seconds_\w+\{(le="[^"]+",)?policy="vip"}', line)
    )
    assert per_policy == (0 if by_source else 2 * (3 + 3))


@pytest.mark.parametrize(
    ("line", "expected"),
    [("", True), ("metrics: {histograms_by_source: false}\n", False)],
    ids=["default", "false"],
)
def test_histograms_by_source_is_a_config_key(tmp_path: Path, line: str, expected: bool) -> None:
    """``metrics.histograms_by_source`` is on unless the config turns it off."""
    config = tmp_path / "replyclock.yaml"
    config.write_text(line + "sources:\n  - {name: inbox, type: maildir, path: mail}\n")
    assert load_config(config).config.metrics.histograms_by_source is expected


def test_histograms_by_source_takes_only_a_boolean(tmp_path: Path) -> None:
    """A value that is not true or false is a config error naming the key."""
    config = tmp_path / "replyclock.yaml"
    config.write_text(
        "metrics: {histograms_by_source: sometimes}\n"
        "sources:\n  - {name: inbox, type: maildir, path: mail}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert "metrics.histograms_by_source" in str(caught.value)
