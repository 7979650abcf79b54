"""Durations as people write them in config: ``30m``, ``4h``, ``2d``, ``1h30m``, ``1w``."""

from __future__ import annotations

import re

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+)\s*([smhdw])")
_WHOLE = re.compile(r"^\s*(?:\d+\s*[smhdw]\s*)+$")


def parse_duration(text: str | int) -> int:
    """Return the number of seconds in a duration such as ``"1h30m"``.

    Units are s, m, h, d (24 h) and w (7 d). A bare number is refused because "30" could mean
    seconds, minutes or hours; the message says how to write it.
    """
    if isinstance(text, bool):
        raise ValueError(f"a duration must look like 30s, 15m, 4h, 2d or 1h30m, got: {text!r}")
    if isinstance(text, int):
        raise ValueError(
            f"a duration needs a unit: write {text}s, {text}m or {text}h "
            f"(got the bare number {text})"
        )
    lowered = text.strip().lower()
    if not _WHOLE.match(lowered):
        raise ValueError(f"a duration must look like 30s, 15m, 4h, 2d or 1h30m, got: {text!r}")
    return sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(lowered))


def format_duration(seconds: float, *, days: bool = True) -> str:
    """Render seconds compactly for people: ``2h05m``, ``3d4h``, ``45s``; negative gets a minus.

    Business time is shown with ``days=False`` (``42h00m``): a business day is not 24 hours,
    so counting it in days would mislead.
    """
    sign = "-" if seconds < 0 else ""
    total = int(abs(seconds))
    days_part, rest = divmod(total, 86400) if days else (0, total)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days_part:
        return f"{sign}{days_part}d{hours}h" if hours else f"{sign}{days_part}d"
    if hours:
        return f"{sign}{hours}h{minutes:02d}m"
    if minutes:
        return f"{sign}{minutes}m{secs:02d}s" if secs else f"{sign}{minutes}m"
    return f"{sign}{secs}s"
