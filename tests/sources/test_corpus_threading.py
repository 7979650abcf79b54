"""Threading and reply semantics on real mailing-list mail (the notmuch test corpora).

The expected threads are computed here from the files with the standard library's ``email``
package and a union-find over Message-ID / In-Reply-To / References, not with replyclock's own
parser, and then compared with the conversations MaildirSource and the store produced. The
literal counts in the assertions were checked against that independent computation.
"""

from __future__ import annotations

import email
import itertools
import re
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.utils import parseaddr, parsedate_to_datetime
from pathlib import Path

import pytest

from monitor.config.models import MaildirSourceConfig
from monitor.mail.classify import MailboxIdentity
from monitor.mail.subjects import normalize_subject
from monitor.model import Direction
from monitor.sla.clocks import Clock, ClockKind, ClockMessage, StopReason, segment_clocks
from monitor.sources.files import MaildirSource
from monitor.store import SourceSink, Store

NOTMUCH = Path(__file__).resolve().parent.parent / "data" / "notmuch"
NOT_MESSAGES = frozenset({"SOURCE.txt", "COPYING", "README"})
NOW = datetime(2026, 11, 24, tzinfo=UTC)
ANGLE_ID = re.compile(r"<([^<>]+)>")
SUBJECT_WINDOW = timedelta(days=14)  # conversations.DEFAULT_SUBJECT_WINDOW


# --- the independent view of the corpus --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CorpusMail:
    """What the standard library reads in one corpus file."""

    path: Path
    message_id: str
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    sender: str
    date: datetime
    subject: str


def _ids(value: object) -> tuple[str, ...]:
    """The ``<...>`` tokens of a header value, whitespace removed (comments are skipped)."""
    return tuple("".join(token.split()) for token in ANGLE_ID.findall(str(value or "")))


def read_mail(path: Path) -> CorpusMail:
    message = email.message_from_bytes(path.read_bytes(), policy=policy.compat32)
    return CorpusMail(
        path=path,
        message_id=_ids(message["Message-ID"])[0],
        in_reply_to=_ids(message["In-Reply-To"]),
        references=_ids(message["References"]),
        sender=parseaddr(str(message["From"]))[1].lower(),
        date=parsedate_to_datetime(str(message["Date"])).astimezone(UTC),
        subject=" ".join(str(message["Subject"]).split()),
    )


def read_corpus(directory: Path) -> list[CorpusMail]:
    """Every message file under ``directory`` (any depth, as notmuch reads it), sorted."""
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name not in NOT_MESSAGES)
    return [read_mail(path) for path in files]


def distinct(mails: Iterable[CorpusMail]) -> dict[str, CorpusMail]:
    """One mail per Message-ID: the corpora hold cross-posted copies of the same message."""
    found: dict[str, CorpusMail] = {}
    for item in mails:
        found.setdefault(item.message_id, item)
    return found


def reply_pairs(mails: dict[str, CorpusMail]) -> set[tuple[str, str]]:
    """(parent, reply) Message-IDs where the reply's In-Reply-To names a message in the corpus."""
    return {
        (parent, m.message_id)
        for m in mails.values()
        for parent in m.in_reply_to
        if parent in mails
    }


class UnionFind:
    """Message ids joined by every id any message names: the threads the headers claim."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, item: str) -> str:
        self.parent.setdefault(item, item)
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, first: str, second: str) -> None:
        self.parent[self.find(first)] = self.find(second)


def header_threads(mails: dict[str, CorpusMail]) -> set[frozenset[str]]:
    """The Message-IDs of the corpus, grouped by connection through any header chain."""
    forest = UnionFind()
    for item in mails.values():
        forest.find(item.message_id)
        for other in (*item.in_reply_to, *item.references):
            # An id without "@" is not a Message-ID: git send-email's `--in-reply-to=yes`
            # wrote "<yes>" into many unrelated LKML series. Threads never join through it.
            if "@" in other:
                forest.union(item.message_id, other)
    groups: dict[str, set[str]] = defaultdict(set)
    for message_id in mails:
        groups[forest.find(message_id)].add(message_id)
    return {frozenset(group) for group in groups.values()}


def names_others(item: CorpusMail) -> bool:
    """Whether the mail names another message (an id with "@") in In-Reply-To or References."""
    return any("@" in other for other in (*item.in_reply_to, *item.references))


def expected_threads(mails: dict[str, CorpusMail]) -> set[frozenset[str]]:
    """The header threads, joined where replyclock's subject rule ties two mails: the same
    sender and normalized subject, dated at most 14 days apart, at least one of the two naming
    no other message. Each such tie is a pair here, so no read order enters."""
    forest = UnionFind()
    for thread in header_threads(mails):
        first, *rest = sorted(thread)
        for other in rest:
            forest.union(first, other)
    by_pair: dict[tuple[str, str], list[CorpusMail]] = defaultdict(list)
    for item in mails.values():
        key = normalize_subject(item.subject)
        if key and item.sender:
            by_pair[(item.sender, key)].append(item)
    for group in by_pair.values():
        for a, b in itertools.combinations(group, 2):
            near = abs(a.date - b.date) <= SUBJECT_WINDOW
            if near and not (names_others(a) and names_others(b)):
                forest.union(a.message_id, b.message_id)
    groups: dict[str, set[str]] = defaultdict(set)
    for message_id in mails:
        groups[forest.find(message_id)].add(message_id)
    return {frozenset(group) for group in groups.values()}


# --- replyclock's view -------------------------------------------------------------------------


def flat_maildir(root: Path, mails: Iterable[CorpusMail]) -> Path:
    """Copy corpus files into one Maildir's cur/ (notmuch keeps some outside cur/ and new/)."""
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for index, item in enumerate(mails):
        shutil.copyfile(item.path, root / "cur" / f"{index:04d}.corpus:2,S")
    return root


def poll(store: Store, root: Path, team: Iterable[str] = ()) -> None:
    config = MaildirSourceConfig.model_validate(
        {
            "type": "maildir",
            "name": "corpus",
            "path": root,
            "timestamps": "date",
            "mailing_lists": "count",
            "since": "10000d",
        }
    )
    identity = MailboxIdentity(team_addresses=frozenset(team), mailing_lists="count")
    MaildirSource(config, identity).poll(SourceSink(store, "corpus"), NOW)


def conversation_of(store: Store) -> dict[str, int]:
    """Message-ID -> conversation id, for every stored message."""
    return dict(store.conn.execute("SELECT message_id, conversation_id FROM messages"))


def stored_threads(store: Store) -> set[frozenset[str]]:
    groups: dict[int, set[str]] = defaultdict(set)
    for message_id, conversation in conversation_of(store).items():
        groups[conversation].add(message_id)
    return {frozenset(group) for group in groups.values()}


def clocks(store: Store, message_id: str) -> list[Clock]:
    """The reply clocks of the stored conversation holding ``message_id``."""
    conversation = store.conversation_for_message("corpus", message_id)
    assert conversation is not None
    return segment_clocks(
        [
            ClockMessage(
                timestamp=m.timestamp,
                direction=m.direction,
                removed_at=m.removed_at,
                author=m.author,
            )
            for m in store.messages(conversation)
        ]
    )


CORPORA = ("default", "lkml", "threading")


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[CorpusMail]]:
    return {name: read_corpus(NOTMUCH / name) for name in CORPORA}


@pytest.fixture(scope="module")
def stores(
    tmp_path_factory: pytest.TempPathFactory, corpus: dict[str, list[CorpusMail]]
) -> Iterator[dict[str, Store]]:
    """One store per corpus, filled by one MaildirSource poll; no team, lists counted."""
    opened: dict[str, Store] = {}
    try:
        for name in CORPORA:
            base = tmp_path_factory.mktemp(name)
            opened[name] = Store.open(base / "store.db")
            poll(opened[name], flat_maildir(base / "Maildir", corpus[name]))
        yield opened
    finally:
        for store in opened.values():
            store.close()


# --- threading ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "files", "messages", "conversations"),
    [
        pytest.param("default", 53, 52, 24, id="default"),
        # Seven, not more: git send-email run with --in-reply-to=yes wrote "<yes>" into several
        # unrelated series, and the header chains (like notmuch's threads) join them through it.
        pytest.param("lkml", 210, 176, 19, id="lkml"),
        pytest.param("threading", 12, 12, 2, id="threading"),
    ],
)
def test_every_message_is_stored_once_at_its_date(
    corpus: dict[str, list[CorpusMail]],
    stores: dict[str, Store],
    name: str,
    files: int,
    messages: int,
    conversations: int,
) -> None:
    """Each distinct Message-ID is stored once (cross-posted copies are duplicates), at the
    instant of its Date header, in as many conversations as there are header-connected threads."""
    mails = distinct(corpus[name])
    store = stores[name]
    timestamps = dict(store.conn.execute("SELECT message_id, timestamp FROM messages"))

    assert (len(corpus[name]), len(mails), len(expected_threads(mails))) == (
        files,
        messages,
        conversations,
    )
    assert store.source_counts() == {"corpus": (messages, conversations)}
    assert timestamps == {mid: int(m.date.timestamp()) for mid, m in mails.items()}


@pytest.mark.parametrize(
    ("name", "pairs"),
    [
        # SOURCE.txt says 26 for default: two In-Reply-To values carry a trailing comment
        # ("<id> (Lars Kellogg-Stedman's message of ...)") that a naive strip("<>") misses.
        pytest.param("default", 28, id="default"),
        pytest.param("lkml", 136, id="lkml"),
        pytest.param("threading", 7, id="threading"),
    ],
)
def test_reply_lands_in_its_parents_conversation(
    corpus: dict[str, list[CorpusMail]], stores: dict[str, Store], name: str, pairs: int
) -> None:
    """Every message whose In-Reply-To names a message of the corpus is in the same
    conversation as that parent."""
    found = reply_pairs(distinct(corpus[name]))
    conversation = conversation_of(stores[name])

    split = [
        (parent, reply) for parent, reply in found if conversation[parent] != conversation[reply]
    ]

    assert len(found) == pairs
    assert split == []


@pytest.mark.parametrize("name", CORPORA)
def test_no_conversation_mixes_unconnected_messages(
    corpus: dict[str, list[CorpusMail]], stores: dict[str, Store], name: str
) -> None:
    """A conversation only holds messages connected through some References/In-Reply-To chain,
    and each such thread is one conversation: the partitions are equal."""
    threads = expected_threads(distinct(corpus[name]))
    thread_of = {mid: thread for thread in threads for mid in thread}

    mixed = [
        group for group in stored_threads(stores[name]) if len({thread_of[m] for m in group}) > 1
    ]

    assert mixed == []
    assert stored_threads(stores[name]) == threads


GHOST_TREE = frozenset(
    {
        "000-real-root@example.org",
        "001-child@example.org",
        "001-fake-message-root@example.org",
        "001-grand-child@example.org",
        "001-grand-child2@example.org",
        "001-great-grand-child@example.org",
    }
)
RT_TICKET = frozenset(
    {
        "87bmc6lp3h.fsf@len.workgroup",
        "rt-4.2.8-22046-1529425595-591.33575-211-0@xxxxxxx-xxxxxxxxxxxxxxxxx-xxxxxxxxx-xxxxxxxxx.de",
        "rt-4.2.8-6644-1530017064-1465.33575-215-0@xxxxxxx-xxxxxxxxxxxxxxxxx-xxxxxxxxx-xxxxxxxxx.de",
    }
)
PARENT_PRIORITY = frozenset(
    {"B00-root@example.org", "B01-child@example.org", "B01-grand-child@example.org"}
)


@pytest.mark.parametrize(
    ("left_out", "expected"),
    [
        # Alice started both trees with "root message" at the same minute: the subject rule
        # makes them one conversation, whichever is read first.
        pytest.param(frozenset(), {GHOST_TREE | PARENT_PRIORITY, RT_TICKET}, id="whole_corpus"),
        pytest.param(
            frozenset({"000-real-root@example.org"}),
            {GHOST_TREE - {"000-real-root@example.org"}, RT_TICKET, PARENT_PRIORITY},
            id="real_root_missing",
        ),
        pytest.param(
            frozenset({"87bmc6lp3h.fsf@len.workgroup"}),
            {GHOST_TREE | PARENT_PRIORITY, RT_TICKET - {"87bmc6lp3h.fsf@len.workgroup"}},
            id="rt_ticket_only_shares_a_ghost",
        ),
        pytest.param(
            frozenset({"B00-root@example.org"}),
            {GHOST_TREE, RT_TICKET, PARENT_PRIORITY - {"B00-root@example.org"}},
            id="parent_priority_without_root",
        ),
    ],
)
def test_messages_sharing_a_missing_root_are_one_conversation(
    tmp_path: Path,
    corpus: dict[str, list[CorpusMail]],
    left_out: frozenset[str],
    expected: set[frozenset[str]],
) -> None:
    """Messages that all name a root the mailbox does not hold (a ghost: an RT ticket id, a
    deleted original) still form one conversation, and unrelated threads stay apart; two trees
    that only their roots' sender and subject tie are one (without either root, two)."""
    mails = [m for m in corpus["threading"] if m.message_id not in left_out]
    with Store.open(tmp_path / "store.db") as store:
        poll(store, flat_maildir(tmp_path / "Maildir", mails))

        assert stored_threads(store) == expected
        assert stored_threads(store) == expected_threads(distinct(mails))


RT_AUTOREPLY = next(mid for mid in RT_TICKET if "-22046-" in mid)


@pytest.mark.parametrize(
    ("thread", "late", "conversations_before"),
    [
        pytest.param(
            GHOST_TREE,
            frozenset({"000-real-root@example.org", "001-child@example.org"}),
            1,
            id="root_and_child_last",
        ),
        pytest.param(RT_TICKET, frozenset({RT_AUTOREPLY}), 2, id="rt_autoreply_last"),
    ],
)
def test_a_later_poll_joins_what_an_earlier_one_split(
    tmp_path: Path,
    corpus: dict[str, list[CorpusMail]],
    thread: frozenset[str],
    late: frozenset[str],
    conversations_before: int,
) -> None:
    """Replies read in one poll and the message linking them in a later poll end up as one
    conversation: RT's resolution notice (which names only the ticket) and the customer's
    original are merged when the auto-reply naming both arrives."""
    mails = [m for m in corpus["threading"] if m.message_id in thread]
    root = tmp_path / "Maildir"
    with Store.open(tmp_path / "store.db") as store:
        poll(store, flat_maildir(root, [m for m in mails if m.message_id not in late]))
        before = stored_threads(store)
        for index, item in enumerate(m for m in mails if m.message_id in late):
            shutil.copyfile(item.path, root / "cur" / f"{index:04d}.late:2,S")
        poll(store, root)

        assert len(before) == conversations_before
        assert stored_threads(store) == {thread}
        assert store.source_counts() == {"corpus": (len(thread), 1)}


# --- reply semantics on LKML -------------------------------------------------------------------


def prolific_replier(mails: dict[str, CorpusMail]) -> tuple[str, int]:
    """The address that most often answers someone else's message in the corpus."""
    counts = Counter(
        m.sender
        for m in mails.values()
        for parent in m.in_reply_to
        if parent in mails and mails[parent].sender != m.sender
    )
    return counts.most_common(1)[0]


MAINTAINER = "broonie@opensource.wolfsonmicro.com"
JOE_SERIES = "cover.1289789604.git.joe@perches.com"  # [PATCH 00/44] remove unnecessary semicolons
HENNE_SERIES = "1297677612-12405-1-git-send-email-henne@nachtwindheim.de"  # [PATCH 1/6] x86: ...


@pytest.fixture(scope="module")
def lkml_with_maintainer(
    tmp_path_factory: pytest.TempPathFactory, corpus: dict[str, list[CorpusMail]]
) -> Iterator[Store]:
    """The whole LKML corpus polled with the team being one maintainer's address."""
    base = tmp_path_factory.mktemp("lkml-team")
    store = Store.open(base / "store.db")
    try:
        poll(store, flat_maildir(base / "Maildir", corpus["lkml"]), team=[MAINTAINER])
        yield store
    finally:
        store.close()


def test_the_maintainer_is_the_most_prolific_replier(corpus: dict[str, list[CorpusMail]]) -> None:
    """The team address used below is the LKML corpus's most frequent answerer of others."""
    assert prolific_replier(distinct(corpus["lkml"])) == (MAINTAINER, 13)


def test_only_the_maintainers_mail_is_outbound(
    corpus: dict[str, list[CorpusMail]], lkml_with_maintainer: Store
) -> None:
    """With the maintainer as the team, their 13 messages are replies and the other 163
    (list posts, counted) are customer messages."""
    mails = distinct(corpus["lkml"])
    rows = lkml_with_maintainer.conn.execute("SELECT message_id, direction FROM messages")
    outbound = {mid for mid, direction in rows if direction == Direction.OUTBOUND}

    assert outbound == {mid for mid, m in mails.items() if m.sender == MAINTAINER}
    assert (len(outbound), len(mails) - len(outbound)) == (13, 163)


def test_maintainer_reply_stops_the_first_clock_not_self_follow_ups(
    corpus: dict[str, list[CorpusMail]], lkml_with_maintainer: Store
) -> None:
    """In a 44-patch series the author's own [PATCH nn/44] follow-ups to the cover letter keep
    the first-response clock running; the maintainer's first message stops it."""
    mails = distinct(corpus["lkml"])
    [thread] = [t for t in header_threads(mails) if JOE_SERIES in t]
    members = sorted((mails[mid] for mid in thread), key=lambda m: m.date)
    answer = min(m.date for m in members if m.sender == MAINTAINER)
    waiting = [m for m in members if m.sender != MAINTAINER and m.date <= answer]

    first = clocks(lkml_with_maintainer, JOE_SERIES)[0]

    assert Counter(m.sender for m in waiting)["joe@perches.com"] == 43
    assert first == Clock(
        kind=ClockKind.FIRST,
        started_at=datetime(2010, 11, 15, 3, 4, 19, tzinfo=UTC),
        stopped_at=datetime(2010, 11, 15, 13, 49, 39, tzinfo=UTC),
        stop_reason=StopReason.REPLY,
        responder=MAINTAINER,
        customer_messages=51,
    )
    assert (first.started_at, first.stopped_at, first.customer_messages) == (
        members[0].date,
        answer,
        len(waiting),
    )


def test_threads_the_maintainer_never_answered_keep_waiting(
    corpus: dict[str, list[CorpusMail]], lkml_with_maintainer: Store
) -> None:
    """Every LKML thread without a message from the maintainer has exactly one clock, running
    since its first message and counting all of its messages."""
    mails = distinct(corpus["lkml"])
    unanswered = [t for t in header_threads(mails) if all(mails[m].sender != MAINTAINER for m in t)]

    expected = {
        min(t, key=lambda mid: mails[mid].date): [
            Clock(
                kind=ClockKind.FIRST,
                started_at=min(mails[mid].date for mid in t),
                customer_messages=len(t),
            )
        ]
        for t in unanswered
    }

    assert len(unanswered) == 18
    assert {mid: clocks(lkml_with_maintainer, mid) for mid in expected} == expected


def test_patch_series_with_only_its_author_keeps_waiting(
    tmp_path: Path, corpus: dict[str, list[CorpusMail]]
) -> None:
    """A [PATCH n/6] series whose author answers only their own first patch is one
    conversation with one running first-response clock over all six messages."""
    series = [
        m
        for m in distinct(corpus["lkml"]).values()
        if m.sender == "henne@nachtwindheim.de" and m.subject.startswith("[PATCH ")
    ]
    assert len(series) == 6
    assert sum(1 for m in series if m.in_reply_to == (HENNE_SERIES,)) == 5
    with Store.open(tmp_path / "store.db") as store:
        poll(store, flat_maildir(tmp_path / "Maildir", series), team=[MAINTAINER])

        assert store.source_counts() == {"corpus": (6, 1)}
        assert clocks(store, HENNE_SERIES) == [
            Clock(
                kind=ClockKind.FIRST,
                started_at=datetime(2011, 2, 14, 10, 0, 7, tzinfo=UTC),
                customer_messages=6,
            )
        ]
