"""A small JSON-over-HTTPS client for helpdesk and issue-tracker APIs (standard library only).

What every API source needs and each vendor documents the same way: bearer or basic auth,
429 answers honoured after their ``Retry-After``, 5xx and connection errors retried with
backoff, and failures turned into one clear ``SourceError`` naming the source and the fix.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from monitor.errors import SourceAuthError, SourceError
from monitor.logs import fields

log = logging.getLogger("replyclock.sources.http")

T = TypeVar("T")

MAX_RETRY_AFTER_S = 300.0  # a longer wait than this ends the poll; the next one tries again


@dataclass(frozen=True, slots=True)
class Response:
    """A decoded JSON answer and its headers (lowercase names)."""

    data: Any
    headers: Mapping[str, str]
    url: str

    def link(self, rel: str) -> str | None:
        """The URL of an RFC 8288 ``Link`` header relation (GitHub's pagination)."""
        for part in self.headers.get("link", "").split(","):
            pieces = part.split(";")
            if len(pieces) < 2:
                continue
            if any(p.strip() in (f'rel="{rel}"', f"rel={rel}") for p in pieces[1:]):
                return pieces[0].strip().strip("<>")
        return None


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 instant from the API as aware UTC, or None when absent or malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else None


def http_status(exc: SourceError) -> int | None:
    """The HTTP status behind a SourceError, when an HTTP answer caused it."""
    cause = exc.__cause__
    return cause.code if isinstance(cause, urllib.error.HTTPError) else None


def unless_gone(read: Callable[[], T]) -> T | None:
    """``read()``, or None when the API answered 404: the ticket was deleted since it was
    listed. Refused credentials and every other failure are raised as they are."""
    try:
        return read()
    except SourceAuthError:
        raise
    except SourceError as exc:
        if http_status(exc) != 404:
            raise
        return None


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


class JsonApi:
    """GET JSON from one API with the retry and error rules every source shares."""

    def __init__(
        self,
        *,
        source: str,
        base_url: str,
        headers: Callable[[], Mapping[str, str]],
        timeout: float,
        what_to_fix: str,
        max_attempts: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.source = source
        self.base_url = base_url.rstrip("/")
        self.headers = headers
        self.timeout = timeout
        self.what_to_fix = what_to_fix  # e.g. "check email and api_token (an API token)"
        self.max_attempts = max_attempts
        self.sleep = sleep
        self.clock = clock
        self.requests = 0  # for tests and logs: how many HTTP requests were made

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """An absolute URL for ``path`` (absolute URLs from pagination pass through)."""
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        if not url.startswith(("http://", "https://")):
            raise SourceError(self.source, f"not an http(s) URL: {url!r}; fix base_url")
        if params:
            query = urllib.parse.urlencode(
                [(k, v) for k, v in params.items() if v is not None], doseq=True
            )
            url += ("&" if "?" in url else "?") + query
        return url

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Response:
        """GET and decode JSON, retrying what is worth retrying."""
        return self._request(self.url(path, params))

    def post_form(self, path: str, form: Mapping[str, str]) -> Response:
        """POST a form (an OAuth2 token request) and decode the JSON answer, like ``get``.

        The form travels in the body, never in the URL, so error messages cannot show it.
        """
        body = urllib.parse.urlencode(list(form.items())).encode()
        return self._request(self.url(path), body=body)

    def _request(self, url: str, body: bytes | None = None) -> Response:
        backoff = 1.0
        form = body is not None
        for attempt in range(1, self.max_attempts + 1):
            extra = {"Content-Type": "application/x-www-form-urlencoded"} if form else {}
            request = urllib.request.Request(  # noqa: S310 - url() only builds http(s) URLs
                url, data=body, headers={"Accept": "application/json", **extra, **self.headers()}
            )
            self.requests += 1
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310
                    body = answer.read()
                    headers = {k.lower(): v for k, v in answer.headers.items()}
            except urllib.error.HTTPError as exc:
                headers = {k.lower(): v for k, v in exc.headers.items()} if exc.headers else {}
                wait = self._wait_for(exc.code, headers, backoff, url)
                if wait is None or attempt == self.max_attempts:
                    raise self._failure(exc.code, url, exc) from exc
                log.warning(
                    "API asked to wait" if exc.code == 429 else "API error; retrying",
                    extra=fields(source=self.source, status=exc.code, wait_s=round(wait, 1)),
                )
                self.sleep(wait)
                backoff = min(backoff * 2, 60.0)
                continue
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                if attempt == self.max_attempts:
                    raise SourceError(
                        self.source,
                        f"cannot reach {self.base_url} ({_reason(exc)}); check "
                        "base_url and the network",
                    ) from exc
                self.sleep(backoff + random.uniform(0, backoff / 2))  # noqa: S311 - jitter
                backoff = min(backoff * 2, 60.0)
                continue
            try:
                data = json.loads(body) if body else None
            except json.JSONDecodeError as exc:
                raise SourceError(
                    self.source, f"{url} did not answer JSON ({exc.msg}); check base_url"
                ) from exc
            return Response(data=data, headers=headers, url=url)
        raise AssertionError("the loop returns or raises")

    def _wait_for(
        self, status: int, headers: Mapping[str, str], backoff: float, url: str
    ) -> float | None:
        # 429 everywhere; GitHub also answers 403 for its primary limit (remaining 0) and its
        # secondary limit (with Retry-After). Help Scout names its header X-RateLimit-Retry-After.
        limited = status == 429 or (
            status == 403
            and (headers.get("x-ratelimit-remaining") == "0" or "retry-after" in headers)
        )
        if limited:
            wait = retry_after_seconds(
                headers.get("retry-after") or headers.get("x-ratelimit-retry-after"), self.clock()
            )
            if wait is None and "x-ratelimit-reset" in headers:
                try:
                    wait = max(float(headers["x-ratelimit-reset"]) - self.clock().timestamp(), 0)
                except ValueError:
                    wait = None
            wait = backoff if wait is None else wait
            if wait > MAX_RETRY_AFTER_S:
                raise SourceError(
                    self.source,
                    f"rate limited by {url} for {wait:.0f}s; the next poll tries again",
                )
            return wait
        if status >= 500:
            return backoff + random.uniform(0, backoff / 2)  # noqa: S311 - jitter, not crypto
        return None

    def _failure(self, status: int, url: str, exc: urllib.error.HTTPError) -> SourceError:
        if status in (401, 403):
            return SourceAuthError(
                self.source,
                f"{self.base_url} rejected the credentials (HTTP {status}); {self.what_to_fix}",
            )
        if status == 404:
            return SourceError(
                self.source, f"{url} was not found (HTTP 404); check the names in the config"
            )
        return SourceError(self.source, f"{url} answered HTTP {status} ({exc.reason})")


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason if reason is not None else exc)


class ApiSettings(Protocol):
    """What the client needs of an API source's config."""

    @property
    def name(self) -> str: ...

    @property
    def api_url(self) -> str: ...

    @property
    def timeout(self) -> int: ...


def source_api(
    config: ApiSettings,
    *,
    headers: Callable[[], Mapping[str, str]],
    what_to_fix: str,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> JsonApi:
    """The client of one API source: its address, timeout and the fix its auth errors name."""
    return JsonApi(
        source=config.name,
        base_url=config.api_url,
        headers=headers,
        timeout=config.timeout,
        what_to_fix=what_to_fix,
        sleep=sleep,
        clock=clock,
    )
