"""The linear address-list reader: the stdlib's results, in bounded work, on any input."""

from __future__ import annotations

from email.utils import getaddresses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.mail.addresses import read_address_list

UNBOUNDED = 10**9

# The characters the address grammar treats specially, and a few that it does not.
ADDRESS_SHAPED = st.lists(
    st.sampled_from(
        [*'()<>@,:;."[]\\', " ", "\t", "a", "b", "x.y", "é", "\x1c", "\r", "\n", '"Doe, J"']
    ),
    max_size=40,
).map("".join)


def compact(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Pairs as headers.py uses them: whitespace removed from addresses, empty pairs dropped."""
    cleaned = ((name, "".join(address.split())) for name, address in pairs)
    return [(name, address) for name, address in cleaned if name or address]


def read(value: str) -> list[tuple[str, str]]:
    """Read a value without any limit, as ``compact`` pairs."""
    pairs, _ = read_address_list(value, limit=UNBOUNDED, budget=UNBOUNDED)
    return compact(pairs)


def steps_taken(value: str) -> int:
    """How many reading steps the reader spent on ``value``."""
    _, left = read_address_list(value, limit=UNBOUNDED, budget=UNBOUNDED)
    return UNBOUNDED - left


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("Ann <a@x.org>, b@y.org", [("Ann", "a@x.org"), ("", "b@y.org")], id="plain"),
        pytest.param('"Doe, Jane" <jane@x.org>', [("Doe, Jane", "jane@x.org")], id="quoted-comma"),
        pytest.param("jane@x.org (Jane Doe)", [("Jane Doe", "jane@x.org")], id="comment-as-name"),
        pytest.param("team: a@x.org, b@x.org;, c@x.org",
                     [("", "a@x.org"), ("", "b@x.org"), ("", "c@x.org")], id="group"),
        pytest.param("undisclosed-recipients:;", [], id="empty-group"),
        pytest.param("MAILER-DAEMON", [("", "MAILER-DAEMON")], id="word-without-at"),
        pytest.param("<@relay.org:a@x.org>", [("", "a@x.org")], id="obsolete-route"),
        pytest.param("a@evil.org@x.org", [("", "@x.org")], id="two-ats-lose-the-local-part"),
        pytest.param("(a (nested) comment) a@x.org", [("a nested comment", "a@x.org")],
                     id="nested-comment"),
    ],
)  # fmt: skip
def test_known_forms(value: str, expected: list[tuple[str, str]]) -> None:
    """Names, comments, groups, routes and junk read as the stdlib's compat32 parser reads them."""
    assert read(value) == expected


@settings(max_examples=1500, deadline=None)
@given(ADDRESS_SHAPED)
def test_reads_as_the_stdlib_does(value: str) -> None:
    """On any short address-shaped text, the pairs are exactly ``email.utils.getaddresses``'s."""
    assert read(value) == compact(getaddresses([value]))


@settings(max_examples=500, deadline=None)
@given(ADDRESS_SHAPED.filter(bool))
def test_work_is_linear_in_the_value(value: str) -> None:
    """The reader spends at most ten steps per character, whatever the characters are."""
    assert steps_taken(value) <= 10 * len(value)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("(" * 100_000, id="deep-comment-no-recursion"),
        pytest.param("g:" * 50_000, id="deep-groups-no-recursion"),
        pytest.param(";" * 100_000, id="only-delimiters"),
        pytest.param("g:" + "a@b," * 25_000 + ";", id="big-group"),
    ],
)
def test_hostile_values_stop_at_the_budget(value: str) -> None:
    """Deep nesting never recurses, and the budget stops the reading wherever it is."""
    pairs, left = read_address_list(value, limit=500, budget=1_000)
    assert left == 0 or not value
    assert len(pairs) <= 500


def test_limit_caps_the_pairs() -> None:
    """No more than ``limit`` pairs come back, from the start of the list."""
    value = ", ".join(f'"User {i}" <u{i}@x.org>' for i in range(2_000))
    pairs, _ = read_address_list(value, limit=500, budget=UNBOUNDED)
    assert len(pairs) == 500
    assert pairs[-1] == ("User 499", "u499@x.org")
