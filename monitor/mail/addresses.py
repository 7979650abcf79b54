"""Read an address-list header (From, To, Cc, ...) into (name, address) pairs in linear time.

``email.utils.getaddresses`` cannot be given outside input of any size: it reads one character
per Python step (about 3 µs a character on a line of ";"), builds the addresses of a group by
copying the list once per address (quadratic in the size of the group), and recurses once per
nested "(" (a RecursionError after about a thousand). This reader follows the same rules as the
stdlib's compat32 parser (``email._parseaddr.AddrlistClass``) step for step, so every address
reads as it did before, but jumps over runs of ordinary characters with regexes, counts the
depth of nested comments instead of recursing, reads groups in a loop, and stops after
``limit`` pairs or ``budget`` reading steps, whichever comes first.

One difference is on purpose: whitespace inside an address is dropped instead of kept, because
the caller removes it anyway ("a . b@x" and "a.b@x" are the same address).
"""

from __future__ import annotations

import re

__all__ = ["read_address_list"]

_SPECIALS = '()<>@,:;."[]'
_FWS = " \t\r\n"
_ATOM_ENDS = _SPECIALS + _FWS
_PHRASE_ENDS = _ATOM_ENDS.replace(".", "")  # RFC 2822 obs-phrase: dots are allowed in names
_ATOM = re.compile(r'[^()<>@,:;."\[\] \t\r\n]+')
_PHRASE_ATOM = re.compile(r'[^()<>@,:;"\[\] \t\r\n]+')
_FWS_RUN = re.compile(r"[ \t\r\n]+")
_LWS_RUN = re.compile(r"[ \t]+")
# A quoted string or domain literal: backslash escapes the next character; a closing mark or a
# CR ends it; an unterminated one runs to the end. Possessive, so a failed end never backtracks.
_QUOTED = re.compile(r'"((?:[^"\\\r]++|\\[\s\S])*+)\\?["\r]?')
_LITERAL = re.compile(r"\[((?:[^\]\\\r]++|\\[\s\S])*+)\\?[\]\r]?")
_ESCAPED = re.compile(r"\\([\s\S])")
_COMMENT_STOP = re.compile(r"[()\\\r]")


class _Reader:
    """A cursor over one header value, with the comments met while reading one address."""

    __slots__ = ("budget", "comments", "pos", "text")

    def __init__(self, text: str, budget: int) -> None:
        self.text = text
        self.pos = 0
        self.budget = budget
        self.comments: list[str] = []

    def step(self) -> bool:
        """Spend one reading step; when none are left, jump to the end so every loop stops."""
        self.budget -= 1
        if self.budget < 0:
            self.pos = len(self.text)
            return False
        return True

    def more(self) -> bool:
        """Whether there is text left to read and budget left to read it."""
        return self.pos < len(self.text) and self.step()

    def skip(self, pattern: re.Pattern[str]) -> None:
        """Move past the run that ``pattern`` matches at ``pos``, if any."""
        match = pattern.match(self.text, self.pos)
        if match is not None:
            self.pos = match.end()

    def skip_space_and_comments(self) -> None:
        """Skip folding whitespace and comments, keeping each comment's text."""
        while self.more():
            if self.text[self.pos] in _FWS:
                self.skip(_FWS_RUN)
            elif self.text[self.pos] == "(":
                self.comments.append(self.comment())
            else:
                break

    def comment(self) -> str:
        """Read a comment at ``pos`` (nested ones included, their text joined), past its end."""
        parts: list[str] = []
        depth = 1
        self.pos += 1
        while depth and self.step():
            stop = _COMMENT_STOP.search(self.text, self.pos)
            if stop is None:
                parts.append(self.text[self.pos :])
                self.pos = len(self.text)
                break
            parts.append(self.text[self.pos : stop.start()])
            self.pos = stop.end()
            mark = stop.group()
            if mark == "\\":
                parts.append(self.text[self.pos : self.pos + 1])
                self.pos = min(self.pos + 1, len(self.text))
            elif mark == "(":
                depth += 1
            else:  # ")" or a CR ends one level
                depth -= 1
        return "".join(parts)

    def delimited(self, pattern: re.Pattern[str]) -> str:
        """Read a quoted string or domain literal at ``pos``, unescaped, past its end."""
        match = pattern.match(self.text, self.pos)
        if match is None:  # cannot happen: both patterns match their opening mark alone
            self.pos += 1
            return ""
        self.pos = match.end()
        return _ESCAPED.sub(r"\1", match.group(1))

    def atom(self, pattern: re.Pattern[str]) -> str:
        """Read the run of atom characters at ``pos`` (never empty where it is called)."""
        match = pattern.match(self.text, self.pos)
        if match is None:
            self.pos += 1
            return ""
        self.pos = match.end()
        return match.group()

    def phrase(self) -> list[str]:
        """Read the words of a display name (atoms and quoted strings), collecting comments."""
        words: list[str] = []
        while self.more():
            char = self.text[self.pos]
            if char in _FWS:
                self.skip(_FWS_RUN)
            elif char == '"':
                words.append(self.delimited(_QUOTED))
            elif char == "(":
                self.comments.append(self.comment())
            elif char in _PHRASE_ENDS:
                break
            else:
                words.append(self.atom(_PHRASE_ATOM))
        return words

    def domain(self) -> str:
        """Read a domain; "" when a second "@" follows (bpo-34155: never guess which is meant)."""
        parts: list[str] = []
        while self.more():
            char = self.text[self.pos]
            if char in " \t":
                self.skip(_LWS_RUN)
            elif char == "(":
                self.comments.append(self.comment())
            elif char == "[":
                parts.append(f"[{self.delimited(_LITERAL)}]")
            elif char == ".":
                self.pos += 1
                parts.append(".")
            elif char == "@":
                return ""
            elif char in _ATOM_ENDS:
                break
            else:
                parts.append(self.atom(_ATOM))
        return "".join(parts)

    def addr_spec(self) -> str:
        """Read ``local@domain``; a local part alone when no "@" follows, "" for a bad domain."""
        parts: list[str] = []
        self.skip_space_and_comments()
        while self.more():
            char = self.text[self.pos]
            if char == ".":
                parts.append(".")
                self.pos += 1
            elif char == '"':
                quoted = self.delimited(_QUOTED).replace("\\", "\\\\").replace('"', '\\"')
                parts.append(f'"{quoted}"')
            elif char in _ATOM_ENDS:
                break
            else:
                parts.append(self.atom(_ATOM))
            self.skip_space_and_comments()
        if self.pos >= len(self.text) or self.text[self.pos] != "@":
            return "".join(parts)
        self.pos += 1
        self.skip_space_and_comments()
        domain = self.domain()
        return "".join(parts) + "@" + domain if domain else ""

    def route_addr(self) -> str:
        """Read ``<[@route,...:]local@domain>`` at ``pos``, dropping the obsolete route."""
        expect_route = False
        self.pos += 1
        self.skip_space_and_comments()
        address = ""
        while self.more():
            char = self.text[self.pos]
            if expect_route:
                self.domain()
                expect_route = False
            elif char == ">":
                self.pos += 1
                break
            elif char == "@":
                self.pos += 1
                expect_route = True
            elif char == ":":
                self.pos += 1
            else:
                address = self.addr_spec()
                self.pos += 1
                break
            self.skip_space_and_comments()
        return address

    def end_of_address(self) -> None:
        """Skip what follows an address up to and including the comma that ends it."""
        self.skip_space_and_comments()
        if self.pos < len(self.text) and self.text[self.pos] == ",":
            self.pos += 1


def read_address_list(value: str, *, limit: int, budget: int) -> tuple[list[tuple[str, str]], int]:
    """Return up to ``limit`` (display name, address) pairs of an address-list value, and the
    budget left.

    Reads at most ``budget`` steps (a step is one word, run of spaces, comment part or mark), so
    the work is bounded whatever the value; what is left unread is dropped. Names and addresses
    are as the stdlib's compat32 parser gives them; a word without "@" counts as an address
    ("MAILER-DAEMON"), and group names ("undisclosed-recipients:;") give nothing.
    """
    reader = _Reader(value, budget)
    pairs: list[tuple[str, str]] = []
    groups = 0  # how many "name:" groups are open: their addresses are read in this loop too
    while reader.pos < len(value) and len(pairs) < limit:
        start = reader.pos
        if groups:
            reader.skip_space_and_comments()
            if reader.pos < len(value) and value[reader.pos] == ";":
                reader.pos += 1
                groups -= 1
                reader.end_of_address()  # what ends the group's own address
                continue
        if reader.pos >= len(value):
            break
        opened = _read_address(reader, pairs)
        groups += opened
        if reader.pos == start:  # never happens by the rules above; guarantees progress anyway
            reader.pos += 1
    return pairs[:limit], max(reader.budget, 0)


def _keep(pairs: list[tuple[str, str]], name: str, address: str) -> None:
    """Add a pair unless both halves are empty (the stdlib's placeholder for junk)."""
    if name or address:
        pairs.append((name, address))


def _read_address(reader: _Reader, pairs: list[tuple[str, str]]) -> int:
    """Read one address (or the start of a group) into ``pairs``; 1 if a group was opened."""
    reader.comments = []
    reader.skip_space_and_comments()
    start = reader.pos
    comments = reader.comments  # the stdlib keeps this same list when it reads again below
    words = reader.phrase()
    reader.skip_space_and_comments()
    text = reader.text
    if reader.pos >= len(text):
        if words:
            _keep(pairs, " ".join(reader.comments), words[0])
    elif text[reader.pos] in ".@":
        reader.pos = start
        reader.comments = comments
        address = reader.addr_spec()
        _keep(pairs, " ".join(reader.comments), address)
    elif text[reader.pos] == ":":
        reader.pos += 1
        return 1
    elif text[reader.pos] == "<":
        address = reader.route_addr()
        name = " ".join(words)
        if reader.comments:
            name = f"{name} ({' '.join(reader.comments)})"
        _keep(pairs, name, address)
    elif words:
        _keep(pairs, " ".join(reader.comments), words[0])
    elif text[reader.pos] in _SPECIALS:
        reader.pos += 1
    reader.end_of_address()
    return 0
