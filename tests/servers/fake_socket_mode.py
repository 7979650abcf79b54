"""A local fake of Slack's Socket Mode, for the real ``slack_sdk`` SocketModeClient.

``FakeSocketMode`` is a WebSocket server on a loopback port (RFC 6455 with the standard
library only: the HTTP upgrade, masked client frames, text, ping / pong and close). Attached to
a ``FakeSlack`` (``attach``), it makes that fake's ``apps.connections.open`` (app-level token
only) answer a fresh ``ws://127.0.0.1:PORT/link/?ticket=...&app_id=A111`` URL; each ticket
opens one connection, as Slack's do, and a used or unknown one is refused with HTTP 401.

On each connection it first sends ``hello`` (tests/data/slack-socket-mode/hello.json, as
python-slack-sdk's mock server sends it). Then a test sends envelopes to the newest
connection: ``send_interactive`` wraps a payload (a ``block_actions`` in Slack's shape, see
``block_actions``), ``send_raw`` sends a fixture's text unchanged, and ``disconnect`` asks the
client to reconnect (``refresh_requested``, or the fixture's ``too_many_websockets``). The
client answers every envelope with ``{"envelope_id": ...}``: ``acks`` keeps when each came
(``time.monotonic``), and ``late_acks(within=3.0)`` names every envelope sent and not
acknowledged within that many seconds (Slack retries those). ``problems`` collects what the
client did that Slack would not accept (an unmasked frame, an ack for no envelope, a bad
handshake).
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import socketserver
import struct
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from servers.fake_slack import FakeSlack, SlackMessage

DATA = Path(__file__).resolve().parents[1] / "data" / "slack-socket-mode"
HELLO = (DATA / "hello.json").read_text(encoding="utf-8")
TOO_MANY_WEBSOCKETS = (DATA / "disconnect_too_many_websockets.json").read_text(encoding="utf-8")
LARGE_BLOCK_ACTIONS = (DATA / "05_envelope_interactive_block_actions_large.json").read_text(
    encoding="utf-8"
)
APP_ID = "A111"  # the fixtures' scrubbed ids
TEAM = {"id": "T111", "domain": "replyclock-test"}
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455's magic string
_TEXT, _CLOSE, _PING, _PONG = 0x1, 0x8, 0x9, 0xA


@dataclass(slots=True)
class Connection:
    """One WebSocket connection a client opened with one ticket."""

    number: int
    ticket: str
    sock: socket.socket
    opened: float
    greeted: bool = False  # hello sent
    closed: float | None = None
    frames_in: list[tuple[int, bytes]] = field(default_factory=list)  # opcode, payload
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def open(self) -> bool:
        """Whether the connection is still up."""
        return self.closed is None

    def send(self, opcode: int, payload: bytes) -> None:
        """One unmasked server frame (servers never mask)."""
        length = len(payload)
        if length <= 125:
            header = struct.pack("!BB", 0x80 | opcode, length)
        elif length <= 0xFFFF:
            header = struct.pack("!BBH", 0x80 | opcode, 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 127, length)
        with self.lock:
            self.sock.sendall(header + payload)


class FakeSocketMode:
    """Slack's Socket Mode endpoint on a loopback port; see the module docstring."""

    def __init__(self) -> None:
        self.connections: list[Connection] = []
        self.sent: dict[str, float] = {}  # envelope id -> when it was sent
        self.acks: dict[str, float] = {}  # envelope id -> when the client acknowledged it
        self.problems: list[str] = []
        self._tickets: dict[str, bool] = {}  # ticket -> used
        self._lock = threading.Condition()
        self._server: socketserver.ThreadingTCPServer | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeSocketMode:
        """Serve on a free loopback port until ``stop``."""
        fake = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                fake._serve(self.request)

        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.allow_reuse_address = True
        self._server = server
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        """Close every connection and stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for connection in list(self.connections):
            if connection.open:
                connection.sock.close()

    def __enter__(self) -> FakeSocketMode:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def attach(self, slack: FakeSlack) -> FakeSocketMode:
        """Let ``slack``'s apps.connections.open hand out this server's URLs."""
        slack.socket_url = self.issue_url
        return self

    def issue_url(self) -> str:
        """A fresh one-connection URL, as apps.connections.open answers it."""
        assert self._server is not None, "start() the fake first"
        ticket = str(uuid.uuid4())
        with self._lock:
            self._tickets[ticket] = False
        port = self._server.server_address[1]
        return f"ws://127.0.0.1:{port}/link/?ticket={ticket}&app_id={APP_ID}"

    # -- what tests do --------------------------------------------------------------------

    def wait_connected(self, count: int, timeout: float = 10.0) -> Connection:
        """Wait until ``count`` connections were opened in all and the newest has had its
        hello; return the newest."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.connections) < count or not (
                self.connections[-1].open and self.connections[-1].greeted
            ):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{len(self.connections)} Socket Mode connections after {timeout} s, "
                        f"wanted {count}"
                    )
                self._lock.wait(left)
            return self.connections[-1]

    @property
    def current(self) -> Connection:
        """The newest open connection."""
        with self._lock:
            live = [c for c in self.connections if c.open]
        if not live:
            raise AssertionError("no Socket Mode connection is open")
        return live[-1]

    def send_raw(self, text: str) -> str | None:
        """Send one text frame as is (a fixture file); return its envelope_id, if any."""
        envelope_id = json.loads(text).get("envelope_id")
        with self._lock:
            if envelope_id is not None:
                self.sent[envelope_id] = time.monotonic()
        self.current.send(_TEXT, text.encode("utf-8"))
        return str(envelope_id) if envelope_id is not None else None

    def send_interactive(self, payload: Mapping[str, Any]) -> str:
        """Send an ``interactive`` envelope carrying ``payload``; return its envelope_id."""
        envelope = {
            "envelope_id": str(uuid.uuid4()),
            "payload": payload,
            "type": "interactive",
            "accepts_response_payload": False,
        }
        envelope_id = self.send_raw(json.dumps(envelope))
        assert envelope_id is not None
        return envelope_id

    def disconnect(self, reason: str) -> None:
        """Ask the client to reconnect, in the shape of the ``too_many_websockets`` fixture
        (sent verbatim for that reason)."""
        if reason == "too_many_websockets":
            self.send_raw(TOO_MANY_WEBSOCKETS)
            return
        message = json.loads(TOO_MANY_WEBSOCKETS)
        message["reason"] = reason
        self.send_raw(json.dumps(message, separators=(",", ":")))

    def wait_acked(self, envelope_id: str, timeout: float = 5.0) -> float:
        """Wait for the client's ack of one envelope; return how long it took (seconds)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while envelope_id not in self.acks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"envelope {envelope_id} not acknowledged in {timeout} s")
                self._lock.wait(left)
            return self.acks[envelope_id] - self.sent[envelope_id]

    def late_acks(self, within: float = 3.0, now: float | None = None) -> list[str]:
        """Envelopes not acknowledged within ``within`` seconds of being sent (counting those
        still waiting once that time has passed)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return [
                envelope
                for envelope, sent in self.sent.items()
                if self.acks.get(envelope, now) - sent > within
            ]

    # -- serving --------------------------------------------------------------------------

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(None)
        ticket = self._handshake(sock)
        if ticket is None:
            sock.close()
            return
        with self._lock:
            connection = Connection(
                number=len(self.connections) + 1, ticket=ticket, sock=sock, opened=time.monotonic()
            )
            self.connections.append(connection)
        try:
            connection.send(_TEXT, HELLO.encode("utf-8"))
            with self._lock:
                connection.greeted = True
                self._lock.notify_all()
            for opcode, payload in _frames(sock, self.problems):
                connection.frames_in.append((opcode, payload))
                if opcode == _PING:
                    connection.send(_PONG, payload)
                elif opcode == _TEXT:
                    self._ack(payload)
                elif opcode == _CLOSE:
                    connection.send(_CLOSE, payload[:2])
                    break
        except OSError:
            pass  # the client went away
        finally:
            with self._lock:
                connection.closed = time.monotonic()
                self._lock.notify_all()
            sock.close()

    def _handshake(self, sock: socket.socket) -> str | None:
        """Read the client's upgrade request; answer 101 for a fresh ticket, 401 otherwise."""
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = sock.recv(1024)
            if not chunk:
                return None
            request += chunk
        head = request.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        verb, target, _version = [*head[0].split(" "), "", "", ""][:3]
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in head[1:])
        }
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query)
        ticket = (query.get("ticket") or [""])[0]
        key = headers.get("sec-websocket-key", "")
        with self._lock:
            fresh = self._tickets.get(ticket) is False
            if fresh:
                self._tickets[ticket] = True
        upgrade = (
            verb == "GET"
            and headers.get("upgrade", "").lower() == "websocket"
            and headers.get("sec-websocket-version") == "13"
            and key
        )
        if not (fresh and upgrade):
            self.problems.append(f"refused handshake for {target!r} (ticket fresh: {fresh})")
            sock.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
            return None
        accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
        sock.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        return ticket

    def _ack(self, payload: bytes) -> None:
        try:
            envelope_id = json.loads(payload).get("envelope_id")
        except ValueError:
            envelope_id = None
        with self._lock:
            if envelope_id not in self.sent:
                self.problems.append(f"a text frame that acknowledges no envelope: {payload!r}")
            elif envelope_id in self.acks:
                self.problems.append(f"envelope {envelope_id} acknowledged twice")
            else:
                self.acks[envelope_id] = time.monotonic()
            self._lock.notify_all()


def _frames(sock: socket.socket, problems: list[str]) -> Iterator[tuple[int, bytes]]:
    """The client's frames, unmasked and reassembled, until the connection closes."""
    message = b""
    message_opcode = 0
    while True:
        b1, b2 = _read(sock, 2)
        fin, opcode, masked, length = b1 & 0x80, b1 & 0x0F, b2 & 0x80, b2 & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", _read(sock, 2))
        elif length == 127:
            (length,) = struct.unpack("!Q", _read(sock, 8))
        if not masked:
            problems.append(f"an unmasked client frame (opcode {opcode}): RFC 6455 forbids it")
        mask = _read(sock, 4) if masked else b"\0\0\0\0"
        data = bytes(byte ^ mask[i % 4] for i, byte in enumerate(_read(sock, length)))
        if opcode >= 0x8:  # control frames come whole, even between fragments
            yield opcode, data
            continue
        message += data
        message_opcode = opcode or message_opcode
        if fin:
            yield message_opcode, message
            message, message_opcode = b"", 0


def _read(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionResetError("the client closed the connection")
        data += chunk
    return data


def block_actions(
    message: SlackMessage,
    action_id: str,
    *,
    user_id: str,
    user_name: str,
    channel_name: str = "sla-alerts",
) -> dict[str, Any]:
    """The ``block_actions`` payload Slack sends when ``user_id`` presses the button
    ``action_id`` of a message the bot posted: the button (its value included) is read from
    the message's own blocks, so a test presses what the daemon really sent. The fields are
    Slack's (java-slack-sdk's BlockActionPayload sample; python-slack-sdk's envelope fixture
    for the values' form)."""
    buttons = [
        element
        for block in message.blocks or []
        if block.get("type") == "actions"
        for element in block.get("elements", [])
        if element.get("action_id") == action_id
    ]
    if len(buttons) != 1:
        raise AssertionError(f"message {message.ts} has no single button {action_id!r}")
    [button] = buttons
    blocks = message.blocks or []
    actions_block = next(
        (b for b in blocks if b.get("type") == "actions" and button in b.get("elements", [])), {}
    )
    user = {"id": user_id, "username": user_name, "name": user_name, "team_id": TEAM["id"]}
    return {
        "type": "block_actions",
        "user": user,
        "api_app_id": APP_ID,
        "token": "verification-token",
        "container": {
            "type": "message",
            "message_ts": message.ts,
            "channel_id": message.channel,
            "is_ephemeral": False,
            **({"thread_ts": message.thread_ts} if message.thread_ts else {}),
        },
        "trigger_id": f"{int(time.time())}.3485157640.{uuid.uuid4().hex}",
        "team": TEAM,
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": message.channel, "name": channel_name},
        "message": message.as_api(),
        "state": {"values": {}},
        "response_url": f"https://hooks.slack.com/actions/T111/{uuid.uuid4().int % 10**12}/x",
        "actions": [
            {
                "action_id": action_id,
                "block_id": actions_block.get("block_id", "actions"),
                "text": {**button["text"], "emoji": True},
                "value": button["value"],
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
