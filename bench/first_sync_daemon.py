"""The daemon's own first sync of a large mailbox among many small ones, against `run --once`.

Loads one large support mailbox (default ~148,000 messages: 62,000 conversations over 28 days,
INBOX and Sent) and 20 small ones (80 conversations each) into a test Dovecot, then on fresh
stores:

  (a) `replyclock run` with its defaults, timed from start until /readyz answers 200 (every
      source read and evaluated); small sources' polls and the 30-second evaluation run while
      the large one is still being read;
  (b) `replyclock run --once` on the same mailboxes (the baseline), timed to its end;

and prints both times, their ratio, and whether the two stores hold exactly the same
conversations, clocks, totals and waiting counts (they must). Needs root and dovecot-imapd.

    python bench/first_sync_daemon.py [--conversations 62000] [--small 20] [--kill-after S]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from harness import free_port, wait_for  # noqa: E402
from harness.compare import differences, store_facts  # noqa: E402
from harness.mailbox import RULES, support_mailbox  # noqa: E402
from harness.service import Service, imap_source  # noqa: E402
from servers.dovecot import DovecotServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=62_000, help="in the large mailbox")
    parser.add_argument("--small", type=int, default=20, help="small mailboxes beside it")
    parser.add_argument(
        "--kill-after",
        type=float,
        metavar="SECONDS",
        help="kill -9 the daemon this long into its first sync, then start it again",
    )
    args = parser.parse_args()
    server = DovecotServer()
    server.start()
    workdirs = [Path(tempfile.mkdtemp(prefix="replyclock-bench-")) for _ in range(2)]
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        sizes = {"large": args.conversations, **{f"small{n}": 80 for n in range(args.small)}}
        sources = ""
        messages = 0
        for tag, conversations in sizes.items():
            user = server.create_user(tag)
            box = support_mailbox(tag, conversations, now, days=28)
            server.write_maildir(user.username, "INBOX", box.inbox)
            server.write_maildir(user.username, "Sent", box.sent)
            messages += box.size
            sources += imap_source(tag, user)
        daemon, once = (Service(workdir=w, port=free_port()) for w in workdirs)
        daemon.write(sources, rules=RULES)
        once.write(sources, rules=RULES)
        started = time.monotonic()
        daemon.start()
        if args.kill_after is not None:
            time.sleep(args.kill_after)
            if daemon.ready():
                print("the first sync was over before the kill: use a shorter --kill-after")
                return 1
            daemon.kill()  # SIGKILL mid-sync; the restart must end with the same store
            print(f"killed -9 after {args.kill_after:.0f} s, mid-sync; started again")
            daemon.start()
        ready = wait_for(lambda: daemon.ready() or not daemon.alive(), 3600, 0.5)
        daemon_s = time.monotonic() - started
        daemon.stop()
        if not ready:
            print(daemon.logs[-1][-3000:])
            return 1
        started = time.monotonic()
        result = once.run_once(timeout=3600)
        once_s = time.monotonic() - started
        if result.returncode != 0:
            print(result.stderr[-3000:])
            return 1
        first, second = store_facts(daemon.db), store_facts(once.db)
        waiting = sum(n for *_, n in first["awaiting"])
        print(f"machine: {platform.machine()}, Python {platform.python_version()}")
        print(f"{len(sizes)} mailboxes, {messages:,} messages, {waiting:,} conversations waiting")
        print(f"(a) daemon first sync until /readyz 200: {daemon_s:7.1f} s")
        print(f"(b) run --once (baseline):               {once_s:7.1f} s")
        print(f"(a)/(b): {daemon_s / once_s:.2f}")
        print(f"stores equal: {first == second}", *differences(first, second), sep="\n  ")
        return 0 if first == second else 1
    finally:
        server.stop()
        for workdir in workdirs:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
