"""Numbers, sizes, times and durations written the way Ollama's CLI writes them."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

_KB, _MB, _GB, _TB = 1000, 1000**2, 1000**3, 1000**4
_FRACTION = re.compile(r"(\.\d+)")


def human_bytes(size: int) -> str:
    """Decimal units; one decimal only below 10 and only when it is not whole (``4.7 GB``)."""
    for limit, unit in ((_TB, "TB"), (_GB, "GB"), (_MB, "MB"), (_KB, "KB")):
        if size >= limit:
            value = size / limit
            if value >= 10 or value == math.trunc(value):
                return f"{int(value)} {unit}"
            return f"{value:.1f} {unit}"
    return f"{size} B"


def parse_time(text: str) -> datetime | None:
    """An RFC 3339 timestamp from the API; ``None`` for an empty or zero (year 1) time."""
    if not text:
        return None
    value = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    # Go writes up to nine fractional digits; Python reads at most six.
    value = _FRACTION.sub(lambda m: m.group(1)[:7], value, count=1)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return None if parsed.year <= 1 else parsed


def _round_half_away(value: float) -> int:
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def _duration_words(seconds_total: float) -> str:
    seconds = int(seconds_total)
    if seconds < 1:
        return "Less than a second"
    if seconds == 1:
        return "1 second"
    if seconds < 60:
        return f"{seconds} seconds"
    minutes = int(seconds_total / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = _round_half_away(seconds_total / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds_total / 3600) // 24 // 365} years"


def human_time(when: datetime | None, zero: str = "Never", now: datetime | None = None) -> str:
    """``2 minutes ago``, ``4 minutes from now``, ``Forever`` (over 20 years ahead)."""
    if when is None:
        return zero
    now = now or datetime.now(UTC)
    delta = (now - when).total_seconds()
    if int(int(delta / 3600) / 24 / 365) < -20:
        return "Forever"
    if delta < 0:
        return _duration_words(-delta) + " from now"
    return _duration_words(delta) + " ago"


def _scaled(value: int, unit: int) -> str:
    whole, fraction = divmod(value, unit)
    if not fraction:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{fraction:0{digits}d}".rstrip("0")


def go_duration(nanoseconds: int) -> str:
    """A duration as Go prints ``time.Duration``: ``5.331288816s``, ``303.749ms``, ``1m2.5s``."""
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    ns = abs(nanoseconds)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_scaled(ns, 1_000)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_scaled(ns, 1_000_000)}ms"
    whole_seconds, fraction = divmod(ns, 1_000_000_000)
    hours, rest = divmod(whole_seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = _scaled(seconds * 1_000_000_000 + fraction, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text
