"""A real Dovecot IMAP server for the integration tests, on free loopback ports.

``DovecotServer`` writes its own ``dovecot.conf`` into a private directory (never
``/etc/dovecot``), runs ``dovecot -F -c <conf>`` as a child process in its own process
group, and stops it with SIGTERM (SIGKILL to the whole group after a timeout), so no
process is left behind.  What the server offers:

* plain IMAP (STARTTLS offered, plaintext LOGIN allowed) and IMAPS on ``127.0.0.1``;
* a self-signed certificate made with ``openssl`` (SAN ``IP:127.0.0.1``, ``DNS:localhost``),
  whose PEM is ``ca_file``: verify against it with ``ssl.create_default_context(cafile=...)``;
* users added at run time, usable at once: one passwd-file per user (``passwd.d/<user>``;
  a new file is read on first lookup, whereas one shared file is re-checked by Dovecot at
  most once a second), with PLAIN and LOGIN for the password and XOAUTH2 / OAUTHBEARER for
  a separate per-user token (``oauth-tokens.d/<user>``), or, with
  ``oauth2_introspection_url``, Dovecot's real ``oauth2`` passdb asking an identity provider
  (``fake_identity.py``) whether the token is live and for which mailbox;
* Maildir storage; INBOX plus ``Sent``, ``Drafts``, ``Trash`` and ``Archive``, each created
  and subscribed automatically and carrying its SPECIAL-USE flag; hierarchy separator ``/``;
* Dovecot's default capabilities (CONDSTORE, QRESYNC, IDLE, UIDPLUS, MOVE, SPECIAL-USE...);
* server time zone UTC, so INTERNALDATE comes back with a ``+0000`` offset;
* no growing auth-failure penalty: every wrong password is refused after ~0.5 s (Dovecot
  flushes failed logins on a fixed 500 ms timer, even with ``auth_failure_delay = 0``).

Needs root (Dovecot's own users ``dovecot`` and ``dovenull`` run the mail and login
processes) and the Debian package dovecot-imapd.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType

import imapclient

HOST = "127.0.0.1"
DEFAULT_DOVECOT = "/usr/sbin/dovecot"
DEFAULT_DOVEADM = "/usr/bin/doveadm"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
CLIENT_TIMEOUT = 10.0
OAUTH2_TIMEOUT_MSECS = 5000  # the oauth2 passdb's wait for the introspection answer
# Folders every user has, with the SPECIAL-USE flag LIST shows for each.
SPECIAL_FOLDERS: dict[str, str] = {
    "Sent": "\\Sent",
    "Drafts": "\\Drafts",
    "Trash": "\\Trash",
    "Archive": "\\Archive",
}

_SAFE_PATH = re.compile(r"[A-Za-z0-9/._+-]+")
_USERNAME = re.compile(r"[a-z0-9][a-z0-9._+@-]{0,63}")
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")
# What may go into the oauth2 args file unquoted (it has no quoting for spaces or "#").
_URL = re.compile(r"https?://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9/._~%+=?&-]*)?")
# Longest socket Dovecot creates under base_dir, and the sun_path limit on Linux.
_LONGEST_SOCKET = "token-login/imap-urlauth"
_SUN_PATH_MAX = 107
_user_numbers = itertools.count(1)
_file_numbers = itertools.count(1)


def find_dovecot() -> str | None:
    """Return the path of the ``dovecot`` binary (PATH first, then /usr/sbin), or None."""
    found = shutil.which("dovecot")
    if found is not None:
        return found
    if os.access(DEFAULT_DOVECOT, os.X_OK):
        return DEFAULT_DOVECOT
    return None


def _find_doveadm() -> str | None:
    found = shutil.which("doveadm")
    if found is not None:
        return found
    if os.access(DEFAULT_DOVEADM, os.X_OK):
        return DEFAULT_DOVEADM
    return None


@dataclass(frozen=True)
class ImapUser:
    """Where and how a test logs in to one mailbox of the test server."""

    host: str
    port: int
    ssl_port: int
    username: str
    password: str
    ca_file: Path
    oauth_token: str


class DovecotServer:
    """One Dovecot instance in a private directory; see the module docstring."""

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        binary: str | None = None,
        oauth2_introspection_url: str | None = None,
        oauth2_ca_file: str | os.PathLike[str] | None = None,
    ):
        """Prepare (but do not start) a server living in ``root``.

        Without ``root`` a fresh directory is made with ``tempfile.mkdtemp`` and removed by
        ``stop()``.  A given ``root`` is kept; it and every parent must be traversable by
        other users (pytest's ``tmp_path`` is not: its parents are mode 700).

        With ``oauth2_introspection_url`` XOAUTH2 and OAUTHBEARER go to Dovecot's real
        ``oauth2`` passdb, which POSTs each token to that RFC 7662 endpoint and lets the
        user in when the answer is ``{"active": true, "email": <the login user>}``; an
        ``https`` endpoint is verified against ``oauth2_ca_file``. The per-user token
        files are not used then (``add_user`` refuses an ``oauth_token``, ``create_user``
        hands out an empty one).
        """
        found = binary if binary is not None else find_dovecot()
        if found is None:
            raise FileNotFoundError("dovecot is not installed (Debian package dovecot-imapd)")
        self.binary = found
        self._owns_root = root is None
        if root is None:
            root = tempfile.mkdtemp(prefix="dovecot-")
            os.chmod(root, 0o755)
        self.root = Path(root).resolve()
        self.host = HOST
        self.port = 0
        self.ssl_port = 0
        self.base_dir = self.root / "run"
        self.state_dir = self.root / "state"
        self.mail_dir = self.root / "mail"
        self.config_path = self.root / "dovecot.conf"
        self.log_path = self.root / "dovecot.log"
        self.stderr_path = self.root / "dovecot.stderr"
        self.passwd_dir = self.root / "passwd.d"
        self.tokens_dir = self.root / "oauth-tokens.d"
        self.ca_file = self.root / "cert.pem"
        self.key_file = self.root / "key.pem"
        self.oauth2_introspection_url = oauth2_introspection_url
        self.oauth2_ca_file = None if oauth2_ca_file is None else Path(oauth2_ca_file)
        self.oauth2_config_path = self.root / "dovecot-oauth2.conf.ext"
        if oauth2_introspection_url is not None and not _URL.fullmatch(oauth2_introspection_url):
            raise ValueError(
                f"introspection URL must match {_URL.pattern}: {oauth2_introspection_url}"
            )
        if self.oauth2_ca_file is not None and not _SAFE_PATH.fullmatch(str(self.oauth2_ca_file)):
            raise ValueError(f"CA file name must match {_SAFE_PATH.pattern}: {oauth2_ca_file}")
        self._make_root()
        self._proc: subprocess.Popen[bytes] | None = None
        self._users: set[str] = set()
        self._lock = threading.Lock()
        self._prepared = False
        self._ports_fixed = False
        self._closed = False

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<DovecotServer {state} imap={self.port} imaps={self.ssl_port} root={self.root}>"

    def __enter__(self) -> DovecotServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the Dovecot master process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start Dovecot and wait until both ports answer; RuntimeError (with log) if not.

        Ports are picked when the server is prepared (first ``start``/``add_user``); only
        the first start may pick new ones, if another process grabbed one in the meantime.
        Later starts always reuse them.
        """
        if self.running:
            return
        self._prepare()
        attempts = 1 if self._ports_fixed else 3
        for attempt in range(1, attempts + 1):
            try:
                self._launch()
            except RuntimeError as error:
                if attempt < attempts and "Address already in use" in str(error):
                    self.port, self.ssl_port = _free_ports(2)
                    continue
                raise
            self._ports_fixed = True
            return

    def stop_temporarily(self) -> None:
        """Shut the server down but keep ports, users, mail and certificate for ``restart``."""
        self._shutdown()

    def restart(self) -> None:
        """Start the server again (stopping it first if it runs) on the same ports."""
        self._shutdown()
        self.start()

    def stop(self) -> None:
        """Shut the server down for good and remove the directory if this object made it."""
        self._shutdown()
        if self._owns_root and not self._closed:
            shutil.rmtree(self.root, ignore_errors=True)
        self._closed = True

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of Dovecot's log and stderr, for failure messages."""
        parts = []
        for path in (self.log_path, self.stderr_path):
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").strip()
                if text:
                    parts.append("\n".join(text.splitlines()[-lines:]))
        return "\n".join(parts) if parts else "(Dovecot wrote no log)"

    # -- users ----------------------------------------------------------------------------

    def add_user(self, name: str, password: str, *, oauth_token: str | None = None) -> None:
        """Add a user who can log in at once, whether or not the server is running.

        ``password`` works with PLAIN and LOGIN; ``oauth_token``, if given, with XOAUTH2 and
        OAUTHBEARER (checked like a password against the user's token file; no real OAuth).
        Names are lowercase (Dovecot lowercases logins). Adding a name twice is an error:
        Dovecot re-checks a file it has read at most once a second, so a change could go
        unseen.
        """
        if not _USERNAME.fullmatch(name):
            raise ValueError(f"user name must match {_USERNAME.pattern}: {name!r}")
        if oauth_token is not None and self.oauth2_introspection_url is not None:
            raise ValueError(
                "this server checks OAuth2 tokens with its identity provider; "
                f"get {name!r} a token there instead of passing oauth_token"
            )
        self._prepare()
        with self._lock:
            if name in self._users:
                raise ValueError(f"user {name!r} exists already")
            self._users.add(name)
            if oauth_token is not None:
                _write_passwd_file(self.tokens_dir / name, name, oauth_token)
            _write_passwd_file(self.passwd_dir / name, name, password)

    def create_user(self, prefix: str = "user", *, domain: str | None = None) -> ImapUser:
        """Add a new user with a unique name, random password and token; empty mailbox.

        With ``domain`` the name is an address (``support7-1a2b3c4d@example.com``), as
        mailboxes behind OAuth2 are. Call it after ``start()``: the returned ports are those
        in use at this moment.
        """
        name = f"{prefix}{next(_user_numbers)}-{secrets.token_hex(4)}"
        if domain is not None:
            name = f"{name}@{domain}"
        password = secrets.token_urlsafe(12)
        # With the oauth2 passdb the identity provider issues the tokens, not this server.
        token = "" if self.oauth2_introspection_url else "ya29." + secrets.token_urlsafe(24)
        self.add_user(name, password, oauth_token=token or None)
        return ImapUser(
            host=self.host,
            port=self.port,
            ssl_port=self.ssl_port,
            username=name,
            password=password,
            ca_file=self.ca_file,
            oauth_token=token,
        )

    # -- clients and mail -----------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that verifies the server against ``ca_file`` (and hostname)."""
        return ssl.create_default_context(cafile=self.ca_file)

    def client(
        self,
        user: str,
        password: str,
        *,
        ssl: bool = False,
        starttls: bool = False,
        timeout: float = CLIENT_TIMEOUT,
    ) -> imapclient.IMAPClient:
        """A logged-in client (plain port, or STARTTLS, or IMAPS with ``ssl=True``).

        Certificates are verified against ``ca_file``; ``normalise_times`` is off, so
        INTERNALDATE comes back as an aware datetime. The caller logs out.
        """
        if ssl:
            client = imapclient.IMAPClient(
                self.host,
                port=self.ssl_port,
                ssl=True,
                ssl_context=self.ssl_context(),
                timeout=timeout,
            )
        else:
            client = imapclient.IMAPClient(self.host, port=self.port, ssl=False, timeout=timeout)
        client.normalise_times = False
        try:
            if starttls and not ssl:
                client.starttls(self.ssl_context())
            client.login(user, password)
        except BaseException:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise
        return client

    @contextlib.contextmanager
    def session(self, user: str, password: str) -> Iterator[imapclient.IMAPClient]:
        """``client()`` as a context manager that logs out at the end."""
        client = self.client(user, password)
        try:
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def append(
        self,
        user: str,
        password: str,
        folder: str,
        message: bytes,
        *,
        internaldate: datetime,
        flags: Iterable[str | bytes] = (),
    ) -> int:
        """APPEND ``message`` to ``folder`` and return its UID (from APPENDUID).

        ``internaldate`` must be timezone-aware; IMAP keeps whole seconds only.
        """
        if internaldate.tzinfo is None or internaldate.utcoffset() is None:
            raise ValueError("internaldate must be timezone-aware")
        with self.session(user, password) as client:
            response = client.append(folder, message, flags=tuple(flags), msg_time=internaldate)
        match = _APPENDUID.search(response if isinstance(response, bytes) else b"")
        if match is None:
            raise RuntimeError(f"APPEND answered without APPENDUID: {response!r}")
        return int(match.group(2))

    def maildir(self, user: str, folder: str = "INBOX") -> Path:
        """The Maildir++ directory holding ``folder`` of ``user`` (``Sent`` is ``.Sent``)."""
        base = Path(self.mail_dir) / user
        return base if folder.upper() == "INBOX" else base / ("." + folder.replace("/", "."))

    def write_maildir(
        self, user: str, folder: str, messages: Iterable[tuple[bytes, datetime]]
    ) -> int:
        """Write messages straight into a folder's Maildir, far faster than one APPEND each;
        each file's time becomes its INTERNALDATE (any date at all, which APPEND does not
        allow: Dovecot replaces a future APPEND date with the present). Dovecot finds the
        files at its next look at the folder. Returns how many were written."""
        directory = self.maildir(user, folder)
        owner = _system_user("dovecot")
        for sub in ("cur", "new", "tmp"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        for made in (directory, *(directory / sub for sub in ("cur", "new", "tmp"))):
            os.chown(made, owner.pw_uid, owner.pw_gid)
        if directory != Path(self.mail_dir) / user:
            os.chown(directory.parent, owner.pw_uid, owner.pw_gid)
        count = 0
        for data, when in messages:
            stamp = when.timestamp()
            name = f"{int(stamp)}.M{next(_file_numbers)}P{os.getpid()}.replyclock-test:2,S"
            path = directory / "cur" / name
            path.write_bytes(data)
            os.chown(path, owner.pw_uid, owner.pw_gid)
            os.utime(path, (stamp, stamp))
            count += 1
        return count

    def expunge(self, user: str, password: str, folder: str, uids: Iterable[int]) -> None:
        """Mark the messages ``uids`` in ``folder`` \\Deleted and UID EXPUNGE exactly them."""
        uid_list = sorted(set(uids))
        if not uid_list:
            return
        with self.session(user, password) as client:
            client.select_folder(folder)
            client.delete_messages(uid_list, silent=True)
            client.uid_expunge(uid_list)

    def uidvalidity(self, user: str, folder: str) -> int:
        """The folder's current UIDVALIDITY, read with doveadm (no login needed)."""
        output = self._doveadm("-f", "flow", "mailbox", "status", "-u", user, "uidvalidity", folder)
        match = re.search(r"uidvalidity=(\d+)", output)
        if match is None:
            raise RuntimeError(f"doveadm mailbox status gave no uidvalidity: {output!r}")
        return int(match.group(1))

    def set_uidvalidity(self, user: str, folder: str, uidvalidity: int | None = None) -> int:
        """Change the folder's UIDVALIDITY in place and return the new value.

        Uses ``doveadm mailbox update --uid-validity`` on the running server (works for INBOX
        too). Messages and their UIDs stay as they were, so a client that trusts cached UIDs
        without checking UIDVALIDITY goes wrong, which is what a server restore or
        migration can do. Without ``uidvalidity`` the current value plus one is used.
        Clients see the new value at their next SELECT/EXAMINE/STATUS.
        """
        if uidvalidity is None:
            uidvalidity = self.uidvalidity(user, folder) % 0xFFFFFFFF + 1
        if not 0 < uidvalidity <= 0xFFFFFFFF:
            raise ValueError(f"UIDVALIDITY must be a non-zero 32-bit number: {uidvalidity}")
        self._doveadm("mailbox", "update", "-u", user, "--uid-validity", str(uidvalidity), folder)
        return uidvalidity

    # -- internals ------------------------------------------------------------------------

    def _make_root(self) -> None:
        """Check that Dovecot's users can reach ``root`` (before creating it), then create it."""
        if not _SAFE_PATH.fullmatch(str(self.root)):
            raise ValueError(f"directory name must match {_SAFE_PATH.pattern}: {self.root}")
        if len(str(self.base_dir / _LONGEST_SOCKET)) > _SUN_PATH_MAX:
            raise ValueError(f"directory path too long for Dovecot's UNIX sockets: {self.root}")
        for directory in reversed((self.root, *self.root.parents)):
            if not directory.exists():
                directory.mkdir()
                directory.chmod(0o755)
            if not directory.stat().st_mode & stat.S_IXOTH:
                raise ValueError(
                    f"{directory} is not traversable by other users, so Dovecot's own users "
                    "cannot reach the mail; use a directory made by tempfile.mkdtemp and "
                    "chmod 755"
                )

    def _prepare(self) -> None:
        """Once: directories, certificate and ports (everything but the process)."""
        if self._closed:
            raise RuntimeError("this DovecotServer was stopped for good; make a new one")
        if self._prepared:
            return
        if os.geteuid() != 0:
            raise RuntimeError("the Dovecot test server must be started as root")
        mail_user = _system_user("dovecot")
        _system_user("dovenull")
        self.state_dir.mkdir(exist_ok=True)
        self.mail_dir.mkdir(exist_ok=True)
        os.chown(self.mail_dir, mail_user.pw_uid, mail_user.pw_gid)
        for directory in (self.passwd_dir, self.tokens_dir):
            directory.mkdir(exist_ok=True)
            directory.chmod(0o750)
            os.chown(directory, 0, mail_user.pw_gid)
        _make_certificate(self.ca_file, self.key_file)
        if self.oauth2_introspection_url is not None:
            self.oauth2_config_path.write_text(self._oauth2_config())
            os.chmod(self.oauth2_config_path, 0o644)
        self.port, self.ssl_port = _free_ports(2)
        self._prepared = True

    def _launch(self) -> None:
        # Stale sockets or master.pid from an earlier run confuse Dovecot; start clean.
        shutil.rmtree(self.base_dir, ignore_errors=True)
        self.config_path.write_text(self._config())
        with self.stderr_path.open("ab") as stderr:
            self._proc = subprocess.Popen(
                [self.binary, "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "TZ": "UTC"},
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._shutdown()
                raise RuntimeError(f"Dovecot exited with {code} at start:\n{self.log_tail()}")
            if self._answers():
                return
            if time.monotonic() > deadline:
                self._shutdown()
                raise RuntimeError(
                    f"Dovecot did not answer on {self.host}:{self.port} and :{self.ssl_port} "
                    f"within {START_TIMEOUT:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(0.02)

    def _answers(self) -> bool:
        """True once the plain port sends the IMAP greeting and IMAPS completes TLS."""
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as plain:
                if not plain.recv(512).startswith(b"* OK"):
                    return False
            with (
                socket.create_connection((self.host, self.ssl_port), timeout=1.0) as raw,
                self.ssl_context().wrap_socket(raw, server_hostname=self.host) as tls,
            ):
                return tls.recv(512).startswith(b"* OK")
        except OSError:
            return False

    def _shutdown(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            # The whole group: imap processes serving open client connections would otherwise
            # linger until the deadline below (the master does not wait for them to finish).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid)
                proc.wait()
        # Children left in the group (after a crash of the master) go too.
        deadline = time.monotonic() + STOP_TIMEOUT
        while _group_alive(proc.pid):
            if time.monotonic() > deadline:
                _kill_group(proc.pid)
                break
            time.sleep(0.02)

    def _doveadm(self, *args: str) -> str:
        doveadm = _find_doveadm()
        if doveadm is None:
            raise RuntimeError("doveadm is not installed (Debian package dovecot-core)")
        if not self.running:
            raise RuntimeError("doveadm needs the running server (it asks its auth process)")
        result = subprocess.run(
            [doveadm, "-c", str(self.config_path), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"doveadm {' '.join(args)} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        return result.stdout

    def _config(self) -> str:
        mail_user = _system_user("dovecot")
        mailboxes = "".join(
            f"  mailbox {name} {{\n    special_use = {flag}\n    auto = subscribe\n  }}\n"
            for name, flag in SPECIAL_FOLDERS.items()
        )
        return f"""\
# Written by tests/servers/dovecot.py for one test run; not for production use.
instance_name = replyclock-test-{self.port}
base_dir = {self.base_dir}
state_dir = {self.state_dir}
log_path = {self.log_path}
protocols = imap
listen = {self.host}

ssl = yes
ssl_cert = <{self.ca_file}
ssl_key = <{self.key_file}
disable_plaintext_auth = no

default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1

auth_mechanisms = plain login xoauth2 oauthbearer
auth_verbose = yes
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = username_format=%u {self.passwd_dir}/%u
  mechanisms = plain login
}}
{self._token_passdb()}
userdb {{
  driver = static
  args = uid={mail_user.pw_uid} gid={mail_user.pw_gid} home={self.mail_dir}/%u allow_all_users=yes
}}

mail_location = maildir:{self.mail_dir}/%u
mail_plugins =
mail_fsync = never
namespace inbox {{
  inbox = yes
  separator = /
{mailboxes}}}
protocol imap {{
  mail_max_userip_connections = 1000
}}

service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    address = {self.host}
    port = {self.ssl_port}
    ssl = yes
  }}
}}
# No auth penalty: without this socket Dovecot skips the growing delay after failures.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""

    def _token_passdb(self) -> str:
        """XOAUTH2 / OAUTHBEARER: the per-user token files, or the real oauth2 passdb."""
        if self.oauth2_introspection_url is None:
            return f"""\
passdb {{
  driver = passwd-file
  args = username_format=%u {self.tokens_dir}/%u
  mechanisms = xoauth2 oauthbearer
}}"""
        return f"""\
passdb {{
  driver = oauth2
  args = {self.oauth2_config_path}
  mechanisms = xoauth2 oauthbearer
}}"""

    def _oauth2_config(self) -> str:
        """The oauth2 passdb's args file, in the layout of Dovecot 2.3's example."""
        tls = "" if self.oauth2_ca_file is None else f"tls_ca_cert_file = {self.oauth2_ca_file}\n"
        return f"""\
# Written by tests/servers/dovecot.py: Dovecot's oauth2 passdb asks the fake identity provider.
introspection_url = {self.oauth2_introspection_url}
introspection_mode = post
username_attribute = email
active_attribute = active
active_value = true
timeout_msecs = {OAUTH2_TIMEOUT_MSECS}
{tls}"""


def _system_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise RuntimeError(
            f"system user {name!r} is missing; the Debian package dovecot-core creates it"
        ) from None


def _write_passwd_file(path: Path, name: str, secret: str) -> None:
    """Atomically write a one-line passwd-file; any secret works ({PLAIN.B64} scheme)."""
    encoded = base64.b64encode(secret.encode()).decode()
    temporary = path.with_name(f".{path.name}.new")
    temporary.write_text(f"{name}:{{PLAIN.B64}}{encoded}::::::\n")
    os.chmod(temporary, 0o640)
    os.chown(temporary, 0, _system_user("dovecot").pw_gid)
    os.replace(temporary, path)


def _free_ports(count: int) -> tuple[int, ...]:
    """Distinct loopback ports that were free a moment ago (the kernel picks them)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return tuple(sock.getsockname()[1] for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()


def _make_certificate(cert: Path, key: Path) -> None:
    """A self-signed P-256 certificate for 127.0.0.1 and localhost, usable as its own CA."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is not installed; it makes the test server's certificate")
    result = subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "30", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,digitalSignature,keyCertSign",
            "-addext", "extendedKeyUsage=serverAuth",
            "-keyout", str(key), "-out", str(cert),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"openssl could not make the certificate: {result.stderr.strip()}")
    os.chmod(key, 0o600)
    os.chmod(cert, 0o644)


def _group_alive(pgid: int) -> bool:
    """True while a process of the group runs (zombies awaiting init's reaping don't count)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After the command: state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
