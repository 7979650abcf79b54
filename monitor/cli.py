"""The replyclock command line: check, run, status, explain, dismiss, snooze, recompute, demo.

Each command imports what it uses when it runs: ``status``, ``explain``, ``--help`` and the
other quick commands never load the daemon, the scheduler or the source adapters and their
libraries, so they start in a fraction of the time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from math import floor
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from monitor import __version__
from monitor.errors import ConfigError, ReplyclockError, SourceError

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from monitor.config.loader import LoadedConfig
    from monitor.config.rules import RuleBook
    from monitor.engine import ListedConversation
    from monitor.sla.policy import Policy
    from monitor.store import Store

EPILOG = """\
commands:
  check      validate the config and rules files; list every problem with file and line
             (--connect: sign in to every source and report what is there)
  run        poll every source and keep SLA states current (--once: poll once and summarize)
  status     list the conversations awaiting a reply, soonest breach first
  explain    show one conversation's timeline: messages, policy, clocks, business time
  dismiss    stop a conversation's running clock: no reply needed (not a breach, not a reply)
  snooze     hold a running clock's alerts for a while; the clock and metrics keep counting
  recompute  re-match policies and rebuild every clock under the current rules
  demo       run on a live demo inbox in ./var/demo, with alerts on the console

examples:
  replyclock check -c replyclock.yaml
  replyclock check -c replyclock.yaml --connect
  replyclock run -c replyclock.yaml --once
  replyclock run -c replyclock.yaml
  replyclock status -c replyclock.yaml --source support-inbox
  replyclock explain -c replyclock.yaml 42
  replyclock dismiss -c replyclock.yaml 42 --reason "customer said thanks"
  replyclock snooze -c replyclock.yaml 42 4h
  replyclock recompute -c replyclock.yaml
  replyclock demo
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

    check = command(
        "check",
        "Validate the config and the rules files it includes; exit 1 listing every problem "
        "as FILE:LINE: key.path: message. With --connect, also sign in to every source and "
        "report what is there (read-only).",
        "replyclock check -c replyclock.yaml --connect",
    )
    check.add_argument(
        "--connect",
        action="store_true",
        help="sign in to every source: folders and counts, the Sent folder chosen and why, "
        "server capabilities, newest mail, what a first sync would read, missing replies",
    )
    run = command(
        "run",
        "The service: poll every source at its interval, keep SLA states current, send "
        "alerts and serve /metrics, /healthz and /readyz on metrics.listen, until SIGTERM or "
        "Ctrl-C (SIGHUP reloads the config).",
        "replyclock run -c replyclock.yaml --once",
    )
    run.add_argument(
        "--once", action="store_true", help="poll every source once, print a summary and exit"
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="write alerts to the log instead of sending them to Slack",
    )
    status = command(
        "status",
        "List conversations awaiting a reply with business time waited, due time and state, "
        "soonest breach first. Reads the store; safe to run next to a running daemon.",
        "replyclock status -c replyclock.yaml --source support-inbox",
    )
    status.add_argument("--source", help="only this source")
    status.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    explain_cmd = command(
        "explain",
        "Show one conversation's timeline: each message with its direction and why, the policy "
        "matched and why, each clock's start and stop, business time counted per day, the due "
        "time and the verdict.",
        "replyclock explain -c replyclock.yaml 42",
    )
    explain_cmd.add_argument(
        "conversation", help="conversation id (from `status`) or a Message-ID in it"
    )
    dismiss = command(
        "dismiss",
        "Stop a conversation's running clock as dismissed: no reply is needed. It is neither "
        "a reply nor a breach (a target already missed stays missed), it is counted in "
        "replyclock_dismissed_total, and the clock never alerts again; a later customer "
        "message starts a new clock. Safe next to a running daemon, which takes it in at its "
        "next evaluation.",
        'replyclock dismiss -c replyclock.yaml 42 --reason "customer said thanks"',
    )
    dismiss.add_argument(
        "conversation", help="conversation id (from `status`) or a Message-ID in it"
    )
    dismiss.add_argument("--reason", default="", help="why no reply is needed (shown by explain)")
    snooze = command(
        "snooze",
        "Hold the alerts of a conversation's running clock for DURATION (30m, 4h, 1d). The "
        "clock keeps running and the metrics stay as they are; what falls due meanwhile is "
        "sent when the snooze ends. A later snooze replaces an earlier one. Safe next to a "
        "running daemon.",
        "replyclock snooze -c replyclock.yaml 42 4h",
    )
    snooze.add_argument(
        "conversation", help="conversation id (from `status`) or a Message-ID in it"
    )
    snooze.add_argument("duration", help="how long to hold its alerts: 30m, 4h, 1d")
    snooze.add_argument("--reason", default="", help="why (shown by explain and in Slack)")
    command(
        "recompute",
        "Match every conversation to a policy again and rebuild every clock under the current "
        "rules and calendars. History changes on purpose; run it after editing rules when old "
        "numbers should follow. Needs the store to itself (stop the daemon first).",
        "replyclock recompute -c replyclock.yaml",
    )
    demo = commands.add_parser(
        "demo",
        help="Run on a live demo inbox in ./var/demo, with alerts on the console.",
        description="Write a demo mailbox of realistic conversations dated relative to now into "
        "./var/demo, and run the daemon on it: alerts go to the console, metrics to "
        "127.0.0.1:9465, and new customer mail arrives every few seconds so warnings and "
        "breaches happen live. Nothing outside ./var/demo is written.",
        epilog="example:\n  replyclock demo --duration 120",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--duration", type=int, metavar="SECONDS", help="stop after this long (default: Ctrl-C)"
    )
    demo.add_argument("--listen", default="127.0.0.1:9465", help="metrics address")
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
            return cmd_check(args.config, sys.stdout, connect=args.connect)
        if args.command == "demo":
            return cmd_demo(duration=args.duration, listen=args.listen)
        from monitor.config.loader import load_config  # noqa: PLC0415 - see the module docstring
        from monitor.logs import configure_logging  # noqa: PLC0415

        loaded = load_config(args.config)
        configure_logging(loaded.config.log.format, loaded.config.log.level)
        if args.command == "run":
            return cmd_run(loaded, once=args.once, dry_run=args.dry_run, out=sys.stdout)
        if args.command == "status":
            return cmd_status(loaded, source=args.source, as_json=args.json, out=sys.stdout)
        if args.command == "explain":
            return cmd_explain(loaded, args.conversation, out=sys.stdout)
        if args.command == "dismiss":
            return cmd_act(loaded, args.conversation, "dismiss", reason=args.reason, out=sys.stdout)
        if args.command == "snooze":
            return cmd_act(
                loaded,
                args.conversation,
                "snooze",
                reason=args.reason,
                duration=args.duration,
                out=sys.stdout,
            )
        if args.command == "recompute":
            return cmd_recompute(loaded, out=sys.stdout)
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


def cmd_check(path: Path, out: TextIO, *, connect: bool = False) -> int:
    """Validate config and rules; print every problem, or a one-line summary. With
    ``connect``, probe every source too; exit 1 if any cannot be signed in to."""
    from monitor.config.loader import load_config  # noqa: PLC0415 - see the module docstring

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
    counts = ", ".join(
        _plural(n, noun)
        for n, noun in (
            (len(loaded.config.sources), "source"),
            (len(loaded.rules), "rules file"),
            (policies, "policy"),
            (calendars, "calendar"),
        )
    )
    print(f"{path}: OK ({counts})", file=out)
    if not connect:
        return 0
    from monitor.app import build_sources  # noqa: PLC0415 - every source adapter: --connect only
    from monitor.logs import configure_logging  # noqa: PLC0415
    from monitor.sources.imap_limits import per_server  # noqa: PLC0415
    from monitor.sources.probe import print_probe  # noqa: PLC0415

    configure_logging(loaded.config.log.format, "warning")
    failed = 0
    for source in build_sources(loaded):
        print(file=out)
        if sys.stderr.isatty():
            print(f"connecting to {source.name} ...", file=sys.stderr)
        probe = getattr(source, "probe", None)
        try:
            if probe is None:
                print(f"{source.name}: nothing to connect to", file=out)
                continue
            print_probe(probe(datetime.now(UTC)), out)
        except SourceError as exc:
            failed += 1
            print(f"{source.name}: FAILED: {exc.detail}", file=out)
        finally:
            source.close()
    shared = per_server(loaded.config.sources)
    if shared:
        print(file=out)
        for line in shared:
            print(line, file=out)
    return 1 if failed else 0


def _plural(count: int, noun: str) -> str:
    if count == 1:
        return f"1 {noun}"
    return f"{count} {noun[:-1] + 'ies' if noun.endswith('y') else noun + 's'}"


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


def cmd_run(loaded: LoadedConfig, *, once: bool, dry_run: bool, out: TextIO) -> int:
    """Poll sources into the store, evaluate and alert: once with a summary, or until
    interrupted."""
    import threading  # noqa: PLC0415 - the daemon's modules load only for the commands using them

    from monitor.alerting import AlertPlanner, AlertSettings, Dispatcher  # noqa: PLC0415
    from monitor.app import build_notifier, build_sources, open_store  # noqa: PLC0415
    from monitor.config.rules import build_rulebook  # noqa: PLC0415
    from monitor.daemon import run_forever  # noqa: PLC0415
    from monitor.engine import Engine  # noqa: PLC0415
    from monitor.polling import poll_source  # noqa: PLC0415
    from monitor.store.sqlite import prune_closed, synced_sources  # noqa: PLC0415

    sources = build_sources(loaded, progress=_Progress(sys.stderr))
    rules = build_rulebook(loaded)
    notifier = build_notifier(loaded, dry_run=dry_run)
    store = open_store(loaded)
    try:
        if not once:
            return run_forever(loaded, store, sources, rules, notifier, dry_run=dry_run)
        now = datetime.now(UTC)
        synced_before = synced_sources(store)
        outcomes = [poll_source(source, store, now) for source in sources]
        for source in sources:
            source.close()
        engine = Engine(store, rules)
        engine.evaluate(now)
        settings = AlertSettings.from_config(loaded, threads=notifier.threads)
        synced = synced_sources(store)
        AlertPlanner(store, rules, settings).plan(
            now,
            syncing=[s.name for s in sources if s.name not in synced],
            catching_up=synced - synced_before,
        )
        Dispatcher(store, notifier, threading.Lock(), burst=settings.burst).deliver(now)
        prune_closed(store, loaded.config.store.retention, now)
        counts = store.source_counts()
        waiting = engine.waiting(now)
        rows = [("SOURCE", "STATUS", "NEW", "MESSAGES", "CONVERSATIONS", "AWAITING REPLY")]
        for outcome in outcomes:
            messages, conversations = counts.get(outcome.source, (0, 0))
            awaiting = sum(1 for row in waiting if row.conversation.source == outcome.source)
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


_COLOURS = {"ok": "\033[32m", "warning": "\033[33m", "breached": "\033[1;31m"}


def _coloured(text: str, state: str, enabled: bool) -> str:
    return f"{_COLOURS[state]}{text}\033[0m" if enabled and state in _COLOURS else text


def cmd_status(loaded: LoadedConfig, *, source: str | None, as_json: bool, out: TextIO) -> int:
    """Print conversations awaiting a reply, soonest breach first."""
    from monitor.config.rules import build_rulebook  # noqa: PLC0415 - see the module docstring
    from monitor.engine import Engine  # noqa: PLC0415
    from monitor.store import Store  # noqa: PLC0415

    rules = build_rulebook(loaded)
    store = Store.open(loaded.config.store.path, readonly=True)
    now = datetime.now(UTC)
    try:
        rows = Engine(store, rules).listing(now, source)
    finally:
        store.close()
    if as_json:
        _print_json_lines(rows, out)
        return 0
    if not rows:
        print("No conversation is awaiting a reply.", file=out)
        return 0
    table, states = _status_table(rows, rules)
    _print_table(table, out, states, colour=out.isatty() and not os.environ.get("NO_COLOR"))
    print(
        f"{len(rows)} awaiting a reply; WAITED is business time under each policy's calendar. "
        "`replyclock explain ID` shows why.",
        file=out,
    )
    return 0


def _print_json_lines(rows: list[ListedConversation], out: TextIO) -> None:
    """``status --json``: one object per conversation awaiting a reply."""
    lines = [
        json.dumps(
            {
                "id": row.id,
                "source": row.source,
                "policy": row.policy.name,
                "state": row.state.value,
                "clock": row.kind.value,
                "since": datetime.fromtimestamp(row.started_at, UTC).isoformat(),
                "waited_business_seconds": row.business_seconds,
                "waited_calendar_seconds": row.calendar_seconds,
                "target_seconds": row.target,
                "due": datetime.fromtimestamp(row.due_at, UTC).isoformat(),
                "customer": row.customer,
                "subject": row.subject,
                "snoozed_until": row.snoozed_until.isoformat() if row.snoozed_until else None,
            },
            ensure_ascii=False,
        )
        for row in rows
    ]
    out.write("".join(line + "\n" for line in lines))


_STATUS_HEADER = (
    "ID",
    "SOURCE",
    "POLICY",
    "STATE",
    "WAITED",
    "TARGET",
    "DUE",
    "CUSTOMER",
    "SUBJECT",
)


def _status_table(
    rows: list[ListedConversation], rules: RuleBook
) -> tuple[list[tuple[str, ...]], list[str]]:
    """The status listing's cells, header first, and each line's state (for colour).

    Made column by column: most columns take few distinct values (a source, a policy, a
    target, a due time shared by many clocks), each rendered once and then looked up.
    """
    from monitor.durations import format_duration  # noqa: PLC0415 - see the module docstring

    policies = {row.policy.name: row.policy for row in rows}
    times = {name: LocalTimes(build_zone(rules, policy)) for name, policy in policies.items()}
    names = [row.policy.name for row in rows]
    values = {state: state.value for state in {row.state for row in rows}}
    states = [values[row.state] for row in rows]
    shown = states
    if any(row.snoozed_until is not None for row in rows):
        shown = [
            state
            if row.snoozed_until is None
            else f"{state}, snoozed until "
            f"{times[row.policy.name](floor(row.snoozed_until.timestamp()))}"
            for row, state in zip(rows, states, strict=True)
        ]
    waited = [row.business_seconds for row in rows]
    waited_texts = {seconds: format_duration(seconds, days=False) for seconds in set(waited)}
    targets = [row.target for row in rows]
    target_texts = {seconds: format_duration(seconds) for seconds in set(targets)}
    dues = list(zip(names, [row.due_at for row in rows], strict=True))
    due_texts = {due: times[due[0]](due[1]) for due in set(dues)}
    columns = (
        [str(row.id) for row in rows],
        [row.source for row in rows],
        names,
        shown,
        list(map(waited_texts.__getitem__, waited)),
        list(map(target_texts.__getitem__, targets)),
        list(map(due_texts.__getitem__, dues)),
        [row.customer[:40] for row in rows],
        [row.subject[:50] for row in rows],
    )
    return [_STATUS_HEADER, *zip(*columns, strict=True)], ["", *states]


_EPOCH_DAY = datetime(1970, 1, 1, tzinfo=UTC).date()
_CLOCK_FACES = tuple(f"{hour:02d}:{minute:02d}" for hour in range(24) for minute in range(60))


class LocalTimes:
    """Instants as a zone's clock shows them, ``Tue 24 Nov 15:00 CET``: what ``strftime("%a %d
    %b %H:%M %Z")`` of the instant in the zone gives, for listings of thousands of lines.

    The zone's offset and abbreviation are looked up once per hour of UTC time, and the date's
    words once per local day; an hour in which the zone's offset or abbreviation changes is
    formatted by ``strftime`` itself.
    """

    FORMAT = "%a %d %b %H:%M %Z"

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._hours: dict[int, tuple[int, str] | None] = {}
        self._days: dict[int, str] = {}

    def __call__(self, second: int) -> str:
        """The instant ``second`` (UTC epoch seconds) on the zone's clock."""
        hour = second // 3600
        if hour in self._hours:
            known = self._hours[hour]
        else:
            known = self._hours[hour] = self._hour(hour)
        if known is None:
            instant = datetime.fromtimestamp(second, UTC).astimezone(self.zone)
            return instant.strftime(self.FORMAT)
        offset, name = known
        day, rest = divmod(second + offset, 86400)
        date = self._days.get(day)
        if date is None:
            date = self._days[day] = (_EPOCH_DAY + timedelta(days=day)).strftime("%a %d %b")
        return f"{date} {_CLOCK_FACES[rest // 60]} {name}"

    def _hour(self, hour: int) -> tuple[int, str] | None:
        """The zone's offset (seconds) and abbreviation all through one UTC hour, or None
        when either changes within it."""
        first = datetime.fromtimestamp(hour * 3600, UTC).astimezone(self.zone)
        last = datetime.fromtimestamp(hour * 3600 + 3599, UTC).astimezone(self.zone)
        offset, name = first.utcoffset(), first.tzname()
        if offset is None or name is None or (offset, name) != (last.utcoffset(), last.tzname()):
            return None
        return int(offset.total_seconds()), name


def build_zone(rules: RuleBook, policy: Policy) -> ZoneInfo:
    """The time zone a policy's calendar counts in."""
    return rules.calendar_for(policy).zone


def cmd_explain(loaded: LoadedConfig, reference: str, *, out: TextIO) -> int:
    """Print one conversation's timeline; the reference is an id or a Message-ID."""
    from monitor.config.rules import build_rulebook  # noqa: PLC0415 - see the module docstring
    from monitor.explain import explain  # noqa: PLC0415
    from monitor.store import Store  # noqa: PLC0415

    rules = build_rulebook(loaded)
    store = Store.open(loaded.config.store.path, readonly=True)
    try:
        conversation_id = _find_conversation(store, reference)
        if conversation_id is None:
            return 1
        for line in explain(store, rules, conversation_id, datetime.now(UTC)):
            print(line, file=out)
    finally:
        store.close()
    return 0


def _find_conversation(store: Store, reference: str) -> int | None:
    """The conversation an id or a Message-ID names; None (having said so) when none."""
    if reference.isdigit():
        conversation_id: int | None = int(reference)
    else:
        conversation_id = store.conversation_for_message(None, reference)
    if conversation_id is None or store.conversation(conversation_id) is None:
        print(
            f"replyclock: no conversation {reference!r} in {store.path}; "
            "`replyclock status` lists the ids",
            file=sys.stderr,
        )
        return None
    return conversation_id


def _os_user() -> str:
    """Who runs the command, for the record of an action."""
    import getpass  # noqa: PLC0415 - dismiss and snooze only

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return f"uid {os.getuid()}"


def cmd_act(
    loaded: LoadedConfig,
    reference: str,
    kind: str,
    *,
    reason: str,
    out: TextIO,
    duration: str | None = None,
) -> int:
    """Dismiss a conversation's running clock, or snooze its alerts; say what was done."""
    from monitor.config.rules import build_rulebook  # noqa: PLC0415 - see the module docstring
    from monitor.durations import parse_duration  # noqa: PLC0415
    from monitor.engine import ActionRequest, Engine  # noqa: PLC0415
    from monitor.store import Store  # noqa: PLC0415

    now = datetime.now(UTC)
    until = None
    if kind == "snooze":
        try:
            seconds = parse_duration(duration or "")
        except ValueError as exc:
            print(f"replyclock: DURATION: {exc}", file=sys.stderr)
            return 2
        if seconds <= 0:
            print(f"replyclock: DURATION must be positive, got: {duration!r}", file=sys.stderr)
            return 2
        until = now + timedelta(seconds=seconds)
    rules = build_rulebook(loaded)
    store = Store.open_for_actions(loaded.config.store.path)
    try:
        conversation_id = _find_conversation(store, reference)
        if conversation_id is None:
            return 1
        outcome = Engine(store, rules).act(
            ActionRequest(
                kind="snooze" if kind == "snooze" else "dismiss",
                conversation_id=conversation_id,
                actor=_os_user(),
                via="cli",
                reason=reason.strip(),
                until=until,
            ),
            now,
        )
        beside = store.beside_writer
    finally:
        store.close()
    if outcome.action is None:
        print(
            f"replyclock: conversation {conversation_id}: nothing done: {outcome.message}",
            file=sys.stderr,
        )
        return 1
    action = outcome.action
    why = f" (reason: {action.reason})" if action.reason else ""
    print(f"Conversation {conversation_id}: {outcome.message}{why}.", file=out)
    later = (
        "the running daemon takes it in at its next evaluation (within a minute)"
        if beside
        else "`replyclock run` takes it in at its next evaluation"
    )
    print(
        f"Recorded as action {action.id} by {action.who}; `status` and `explain` show it now, "
        f"{later}.",
        file=out,
    )
    return 0


def cmd_recompute(loaded: LoadedConfig, *, out: TextIO) -> int:
    """Re-match and re-evaluate every conversation under the current rules."""
    from monitor.config.rules import build_rulebook  # noqa: PLC0415 - see the module docstring
    from monitor.engine import Engine  # noqa: PLC0415
    from monitor.store import Store  # noqa: PLC0415

    rules = build_rulebook(loaded)
    store = Store.open(loaded.config.store.path)
    progress_stream = sys.stderr

    def progress(done: int, total: int) -> None:
        if progress_stream.isatty():
            end = "\n" if done >= total else ""
            print(f"\rrecomputing: {done}/{total} conversations", end=end, file=progress_stream)

    try:
        report = Engine(store, rules).recompute(datetime.now(UTC), progress)
    finally:
        store.close()
    print(
        f"recomputed {report.reevaluated} conversations under the current rules "
        f"({report.matched} matched to a policy)",
        file=out,
    )
    return 0


def cmd_demo(*, duration: int | None, listen: str) -> int:
    """Run the daemon on a freshly written demo inbox until stopped (or ``duration``)."""
    from monitor import demo  # noqa: PLC0415 - the daemon's modules load only for the demo
    from monitor.alerts.console import ConsoleNotifier  # noqa: PLC0415
    from monitor.app import build_sources, open_store  # noqa: PLC0415
    from monitor.config.loader import load_config  # noqa: PLC0415
    from monitor.config.rules import build_rulebook  # noqa: PLC0415
    from monitor.daemon import Daemon  # noqa: PLC0415
    from monitor.logs import configure_logging  # noqa: PLC0415

    now = datetime.now(UTC)
    config, box = demo.prepare(demo.default_directory(), listen, now)
    loaded = load_config(config)
    configure_logging(loaded.config.log.format, loaded.config.log.level)
    rules = build_rulebook(loaded)
    store = open_store(loaded)
    try:
        daemon = Daemon(
            loaded, store, build_sources(loaded), rules, ConsoleNotifier(), dry_run=True
        )
    except OSError as exc:
        store.close()
        print(
            f"replyclock: cannot serve metrics on {listen} ({exc.strerror}); try "
            "--listen 127.0.0.1:9466",
            file=sys.stderr,
        )
        return 1
    feeder = demo.DemoFeeder(box)
    daemon.scheduler.add_job(feeder.tick, "interval", seconds=5, id="demo-feed")
    if duration:
        daemon.scheduler.add_job(
            daemon.stop,
            "date",
            args=["demo duration over"],
            id="demo-end",
            run_date=now + timedelta(seconds=duration),
        )
    demo.banner(config, listen, demo.stderr())
    try:
        return daemon.run()
    finally:
        store.close()


def _print_table(
    rows: Sequence[Sequence[str]],
    out: TextIO,
    states: Sequence[str] | None = None,
    *,
    colour: bool = False,
) -> None:
    """Print aligned columns in one write (a listing may have thousands of lines); with
    ``colour``, colour the STATE column (the fourth) by each line's state in ``states``."""
    widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
    if states is None or not colour:  # no colours: one format per line
        line = "  ".join(f"{{:<{width}}}" for width in widths)
        out.write("".join(line.format(*row).rstrip() + "\n" for row in rows))
        return
    lines = []
    for index, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        if index:
            cells[3] = _coloured(cells[3], states[index], enabled=True)
        lines.append("  ".join(cells).rstrip())
    out.write("\n".join(lines) + "\n")
