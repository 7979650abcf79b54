"""The replyclock command line: run, check, status (and more as the product grows)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from monitor import __version__
from monitor.app import build_sources, open_store
from monitor.config.loader import LoadedConfig, load_config
from monitor.daemon import run_forever
from monitor.durations import format_duration
from monitor.errors import ConfigError, ReplyclockError
from monitor.logs import configure_logging
from monitor.polling import poll_source
from monitor.sla.clocks import ClockMessage, segment_clocks
from monitor.store import Store
from monitor.store.sqlite import candidate_waiting_conversations, prune_closed

log = logging.getLogger("replyclock.cli")

EPILOG = """\
commands:
  check    validate the config and rules files; list every problem with file and line
  run      poll every source and keep the store current (--once: poll once and summarize)
  status   list the conversations awaiting a reply, longest waiting first

examples:
  replyclock check -c replyclock.yaml
  replyclock run -c replyclock.yaml --once
  replyclock run -c replyclock.yaml
  replyclock status -c replyclock.yaml --source support-inbox
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="replyclock",
        description="The SLA clock for shared support inboxes and helpdesks: who is waiting "
        "for a reply, and for how long.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"replyclock {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, summary: str, example: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument(
            "-c",
            "--config",
            type=Path,
            default=Path("replyclock.yaml"),
            help="config file (default: replyclock.yaml)",
        )
        return sub

    command(
        "check",
        "Validate the config and the rules files it includes; exit 1 listing every problem "
        "as FILE:LINE: key.path: message.",
        "replyclock check -c replyclock.yaml",
    )
    run = command(
        "run",
        "Poll every source at its interval and keep the store current, until stopped.",
        "replyclock run -c replyclock.yaml --once",
    )
    run.add_argument(
        "--once", action="store_true", help="poll every source once, print a summary and exit"
    )
    status = command(
        "status",
        "List conversations awaiting a reply, longest waiting first. Reads the store; safe to "
        "run next to a running daemon.",
        "replyclock status -c replyclock.yaml --source support-inbox",
    )
    status.add_argument("--source", help="only this source")
    status.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``replyclock`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "check":
            return cmd_check(args.config, sys.stdout)
        loaded = load_config(args.config)
        configure_logging(loaded.config.log.format, loaded.config.log.level)
        if args.command == "run":
            return cmd_run(loaded, once=args.once, out=sys.stdout)
        if args.command == "status":
            return cmd_status(loaded, source=args.source, as_json=args.json, out=sys.stdout)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except ReplyclockError as exc:
        print(f"replyclock: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command}")
    return 2


def cmd_check(path: Path, out: TextIO) -> int:
    """Validate config and rules; print every problem, or a one-line summary."""
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=out)
        noun = "problem" if len(exc.problems) == 1 else "problems"
        print(f"{len(exc.problems)} {noun} found", file=sys.stderr)
        return 1
    policies = sum(len(rules.policies) for _, rules in loaded.rules)
    calendars = sum(len(rules.calendars) for _, rules in loaded.rules)
    print(
        f"{path}: OK ({len(loaded.config.sources)} sources, {len(loaded.rules)} rules files, "
        f"{policies} policies, {calendars} calendars)",
        file=out,
    )
    return 0


class _Progress:
    """Shows a first sync's progress on a terminal; stays silent when output is piped."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.active = stream.isatty()

    def __call__(self, source: str, folder: str, done: int, total: int) -> None:
        if self.active and total >= 1000:
            end = "\n" if done >= total else ""
            print(f"\r{source} {folder}: {done}/{total} messages", end=end, file=self.stream)
            self.stream.flush()


def cmd_run(loaded: LoadedConfig, *, once: bool, out: TextIO) -> int:
    """Poll sources into the store: once with a summary, or until interrupted."""
    sources = build_sources(loaded, progress=_Progress(sys.stderr))
    store = open_store(loaded)
    try:
        if not once:
            return run_forever(loaded, store, sources)
        now = datetime.now(UTC)
        outcomes = [poll_source(source, store, now) for source in sources]
        for source in sources:
            source.close()
        prune_closed(store, loaded.config.store.retention, now)
        counts = store.source_counts()
        waiting = _waiting_rows(store, None, now)
        rows = [("SOURCE", "STATUS", "NEW", "MESSAGES", "CONVERSATIONS", "AWAITING REPLY")]
        for outcome in outcomes:
            messages, conversations = counts.get(outcome.source, (0, 0))
            awaiting = sum(1 for row in waiting if row["source"] == outcome.source)
            rows.append(
                (
                    outcome.source,
                    "ok" if outcome.ok else "FAILED",
                    str(outcome.report.new if outcome.report else 0),
                    str(messages),
                    str(conversations),
                    str(awaiting),
                )
            )
        _print_table(rows, out)
        for outcome in outcomes:
            if outcome.error:
                print(f"{outcome.source}: {outcome.error}", file=out)
        return 0 if all(o.ok for o in outcomes) else 1
    finally:
        store.close()


def _waiting_rows(store: Store, source: str | None, now: datetime) -> list[dict[str, object]]:
    ids = candidate_waiting_conversations(store, source)
    messages = store.messages_by_conversation(ids)
    rows: list[dict[str, object]] = []
    for cid in ids:
        clocks = segment_clocks(
            [
                ClockMessage(timestamp=m.timestamp, direction=m.direction, removed_at=m.removed_at)
                for m in messages[cid]
            ]
        )
        if not clocks or not clocks[-1].running:
            continue
        conversation = store.conversation(cid)
        if conversation is None:
            continue
        clock = clocks[-1]
        rows.append(
            {
                "id": cid,
                "source": conversation.source,
                "clock": clock.kind.value,
                "since": clock.started_at.isoformat(),
                "waited_seconds": int((now - clock.started_at).total_seconds()),
                "customer": conversation.customer,
                "subject": conversation.subject,
            }
        )
    rows.sort(key=lambda row: -int(str(row["waited_seconds"])))
    return rows


def cmd_status(loaded: LoadedConfig, *, source: str | None, as_json: bool, out: TextIO) -> int:
    """Print conversations awaiting a reply, longest waiting first."""
    store = open_store(loaded, readonly=True)
    try:
        rows = _waiting_rows(store, source, datetime.now(UTC))
    finally:
        store.close()
    if as_json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False), file=out)
        return 0
    if not rows:
        print("No conversation is awaiting a reply.", file=out)
        return 0
    table = [("ID", "SOURCE", "CLOCK", "WAITED", "SINCE (UTC)", "CUSTOMER", "SUBJECT")]
    for row in rows:
        table.append(
            (
                str(row["id"]),
                str(row["source"]),
                "first" if row["clock"] == "first_response" else "next",
                format_duration(int(str(row["waited_seconds"]))),
                str(row["since"])[:16].replace("T", " "),
                str(row["customer"])[:40],
                str(row["subject"])[:60],
            )
        )
    _print_table(table, out)
    return 0


def _print_table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(),
            file=out,
        )
