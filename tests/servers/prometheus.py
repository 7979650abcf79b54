"""A real Prometheus server for the integration tests, on a free loopback port.

``PrometheusServer`` writes its own ``prometheus.yml`` into a private directory (never
``/etc/prometheus``), runs ``prometheus --config.file ... --storage.tsdb.path ...`` as a child
process in its own process group, and stops it with SIGTERM (SIGKILL to the whole group after a
timeout), so no process is left behind.  What the server offers:

* one scrape job, ``replyclock`` by default, scraping one ``host:port`` target's
  ``/metrics`` (or another path) every second;
* optional rule files (copied by path into the config), evaluated every second too;
* the HTTP API on ``127.0.0.1``: ``query()`` runs an instant query, ``wait_for_scrapes()``
  and ``wait_for_result()`` wait for data with a deadline, ``targets()`` lists the targets.

Needs the Debian package prometheus (``/usr/bin/prometheus`` and ``/usr/bin/promtool``); runs
as any user.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

HOST = "127.0.0.1"
DEFAULT_PROMETHEUS = "/usr/bin/prometheus"
DEFAULT_PROMTOOL = "/usr/bin/promtool"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
CLIENT_TIMEOUT = 10.0
POLL_INTERVAL = 0.05


def find_prometheus() -> str | None:
    """Return the path of the ``prometheus`` binary (PATH first, then /usr/bin), or None."""
    return _find("prometheus", DEFAULT_PROMETHEUS)


def find_promtool() -> str | None:
    """Return the path of the ``promtool`` binary (PATH first, then /usr/bin), or None."""
    return _find("promtool", DEFAULT_PROMTOOL)


def _find(name: str, default: str) -> str | None:
    found = shutil.which(name)
    if found is not None:
        return found
    if os.access(default, os.X_OK):
        return default
    return None


class PrometheusQueryError(RuntimeError):
    """Prometheus refused or failed a query; the message carries its error type and text."""

    def __init__(self, expr: str, error_type: str, error: str) -> None:
        self.expr = expr
        self.error_type = error_type
        self.error = error
        super().__init__(f"Prometheus query failed ({error_type}): {error}\n  query: {expr}")


class PrometheusServer:
    """One Prometheus instance in a private directory; see the module docstring."""

    def __init__(
        self,
        target: str,
        *,
        metrics_path: str = "/metrics",
        rule_files: Sequence[str | os.PathLike[str]] = (),
        job: str = "replyclock",
        root: str | os.PathLike[str] | None = None,
        binary: str | None = None,
    ):
        """Prepare (but do not start) a server scraping ``target`` (``host:port``) at
        ``metrics_path``.

        Without ``root`` a fresh directory is made with ``tempfile.mkdtemp`` and removed by
        ``stop()``; a given ``root`` is kept.
        """
        found = binary if binary is not None else find_prometheus()
        if found is None:
            raise FileNotFoundError("prometheus is not installed (Debian package prometheus)")
        self.binary = found
        self.target = target
        self.metrics_path = metrics_path
        self.job = job
        self.rule_files = [Path(path).resolve() for path in rule_files]
        self._owns_root = root is None
        self.root = Path(root if root is not None else tempfile.mkdtemp(prefix="prometheus-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path = self.root / "prometheus.yml"
        self.storage_path = self.root / "data"
        self.log_path = self.root / "prometheus.log"
        self.host = HOST
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._closed = False

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<PrometheusServer {state} {self.url} target={self.target} root={self.root}>"

    def __enter__(self) -> PrometheusServer:
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
    def url(self) -> str:
        """The server's base URL, e.g. ``http://127.0.0.1:40123``."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """True while the Prometheus process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start Prometheus and wait until ``/-/ready`` answers; RuntimeError (with log) if not.

        A port taken by another process between picking and binding is retried on a new one.
        """
        if self._closed:
            raise RuntimeError("this PrometheusServer was stopped for good; make a new one")
        if self.running:
            return
        self.config_path.write_text(self.config())
        attempts = 3
        for attempt in range(1, attempts + 1):
            self.port = _free_port()
            try:
                self._launch()
            except RuntimeError as error:
                if attempt < attempts and "address already in use" in str(error):
                    continue
                raise
            return

    def stop(self) -> None:
        """Shut the server down and remove the directory if this object made it."""
        self._shutdown()
        if self._owns_root and not self._closed:
            shutil.rmtree(self.root, ignore_errors=True)
        self._closed = True

    def config(self) -> str:
        """The ``prometheus.yml`` this server runs with."""
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "scrape_configs": [
                {
                    "job_name": self.job,
                    "metrics_path": self.metrics_path,
                    "static_configs": [{"targets": [self.target]}],
                }
            ],
        }
        if self.rule_files:
            config["rule_files"] = [str(path) for path in self.rule_files]
        header = "# Written by tests/servers/prometheus.py for one test run.\n"
        return header + yaml.safe_dump(config, sort_keys=False)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of Prometheus' log, for failure messages."""
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace").strip()
            if text:
                return "\n".join(text.splitlines()[-lines:])
        return "(Prometheus wrote no log)"

    # -- HTTP API -------------------------------------------------------------------------

    def query(self, expr: str, *, at: float | None = None) -> list[dict[str, Any]]:
        """Run an instant query and return its samples as ``{"metric": ..., "value": ...}``.

        A scalar or string result comes back as one sample with empty labels. Raises
        ``PrometheusQueryError`` with Prometheus' error text when the query fails.
        """
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._api("/api/v1/query", params, expr)
        result = data["result"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": result}]
        return list(result)

    def label_values(self, label: str, match: str | None = None) -> list[str]:
        """The values of ``label``, restricted to series matching the selector ``match``."""
        params = {"match[]": match} if match is not None else {}
        path = f"/api/v1/label/{urllib.parse.quote(label, safe='')}/values"
        return list(self._api(path, params, match or label))

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets with their health, last error and last scrape time."""
        return list(self._api("/api/v1/targets", {"state": "active"}, "targets")["activeTargets"])

    def wait_for_result(self, expr: str, deadline: float) -> list[dict[str, Any]]:
        """Query ``expr`` until it returns samples, and return them; TimeoutError at the
        monotonic ``deadline``, naming the expression and the targets' state."""
        while True:
            result = self.query(expr)
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Prometheus returned no data for {expr} in time; "
                    f"targets: {self._targets_summary()}"
                )
            time.sleep(POLL_INTERVAL)

    def wait_for_scrapes(self, count: int, deadline: float) -> int:
        """Wait until the job has at least ``count`` successful scrapes stored, and return the
        number; TimeoutError at the monotonic ``deadline`` with the targets' last errors.

        Sums ``up`` (1 per successful scrape, 0 per failed one), which Prometheus writes itself
        after every scrape whatever the target exposes, so it works for any exporter; with
        several targets the least-scraped one counts.
        """
        expr = f'min(sum_over_time(up{{job="{self.job}"}}[1h]))'
        while True:
            result = self.query(expr)
            scrapes = int(float(result[0]["value"][1])) if result else 0
            if scrapes >= count:
                return scrapes
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"only {scrapes} of {count} scrapes of job {self.job} succeeded in time; "
                    f"targets: {self._targets_summary()}"
                )
            time.sleep(POLL_INTERVAL)

    # -- internals ------------------------------------------------------------------------

    def _api(self, path: str, params: dict[str, str], what: str) -> Any:
        """GET an API path; return ``data`` or raise PrometheusQueryError on status error."""
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=CLIENT_TIMEOUT) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:
            # 400 and 422 carry the error as JSON; anything else is not Prometheus talking.
            try:
                body = json.load(error)
            except ValueError:
                raise PrometheusQueryError(what, f"HTTP {error.code}", error.reason) from error
        if body.get("status") != "success":
            raise PrometheusQueryError(what, body.get("errorType", "?"), body.get("error", "?"))
        return body["data"]

    def _targets_summary(self) -> str:
        try:
            targets = self.targets()
        except (OSError, PrometheusQueryError) as error:
            return f"(cannot list them: {error})"
        return "; ".join(
            f"{t['scrapeUrl']} {t['health']} {t.get('lastError') or ''}".strip() for t in targets
        )

    def _launch(self) -> None:
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.storage_path}",
                    f"--web.listen-address={self.host}:{self.port}",
                    "--log.level=info",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.root,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._shutdown()
                raise RuntimeError(f"Prometheus exited with {code} at start:\n{self.log_tail()}")
            if self._ready():
                return
            if time.monotonic() > deadline:
                self._shutdown()
                raise RuntimeError(
                    f"Prometheus was not ready on {self.url} within {START_TIMEOUT:.0f} s:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(POLL_INTERVAL)

    def _ready(self) -> bool:
        """True once ``/-/ready`` answers 200 (config loaded, storage open, rules loaded)."""
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1.0) as response:
                return response.status == 200
        except (OSError, ValueError):
            return False

    def _shutdown(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _free_port() -> int:
    """A loopback port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])
