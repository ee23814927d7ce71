"""The converters: from a raw value (text, or a literal of a ``.py`` file) to a value.

Each converter is a function that returns the value or raises ``ValueError`` with a short
reason ("is not an integer", "is out of range: ..."); ``config`` adds the option (or rule key)
and the source to make the error message. A number converter has a ``maximum`` attribute, a
converter of a fixed set of words has ``choices``: the declarations (``settings``), ``--help``,
the man page and docs/reference.md read them from there.
"""

import math
import re
from typing import Any, Callable, Optional, Tuple

# The ranges of the numbers: what a person could mean, and what the clock (timedelta, datetime),
# the sleep (threading's TIMEOUT_MAX) and the connection pool (a slot per worker) can take.
MAX_SECONDS = 10 * 365 * 86400  # ten years
MAX_CONCURRENCY = 1000
MAX_PAGE_SIZE = 10000
MAX_PORT = 65535
MAX_REQUEST_TIMEOUT = 86400.0  # a day
MAX_STOPS_PER_PASS = 1000000
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}
_LEVEL_NUMBERS = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})

Converter = Callable[[Any], Any]


def boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ValueError("is not a boolean (true/false, yes/no, 1/0, on/off)")


def count(raw: Any) -> int:
    """A whole number >= 0 (seconds, sizes, ports)."""
    if isinstance(raw, bool):
        raise ValueError("is not an integer")
    try:
        value = raw if isinstance(raw, int) else int(str(raw).strip())
    except ValueError:
        raise ValueError("is not an integer") from None
    if value < 0:
        raise ValueError("must not be negative")
    return value


def whole_number(maximum: int, unit: str = "") -> Converter:
    """A converter to a whole number from 0 to ``maximum`` (its ``maximum`` attribute)."""
    def convert(raw: Any) -> int:
        value = count(raw)
        if value > maximum:
            raise ValueError("is out of range: give a whole number from 0 to %d%s"
                             % (maximum, unit))
        return value
    convert.maximum = maximum  # type: ignore[attr-defined]  # for the tests of the ranges
    return convert


def _positive(raw: Any) -> float:
    """A finite number above 0."""
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise ValueError("is not a number") from None
    if not value > 0 or math.isinf(value):
        raise ValueError("must be a positive number")
    return value


def _at_most(maximum: float, unit: str) -> str:
    return "is out of range: give a number above 0, up to %g%s" % (maximum, unit)


def fraction(raw: Any) -> float:
    """A share of something: a number above 0 and at most 1 (``0.5``)."""
    value = _positive(raw)
    if value > 1:
        raise ValueError("must be a fraction above 0 and at most 1")
    return value


fraction.maximum = 1.0  # type: ignore[attr-defined]  # for the tests of the ranges


# --- durations: every value in seconds also takes 90s, 30m, 1h30m, 7d, 2w --------------------

DURATION_UNITS = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
DURATION_SYNTAX = ("a number of seconds, or a duration such as 90s, 30m, 1h, 1h30m, 7d, 2w "
                   "(units w, d, h, m, s, largest first, each at most once)")
_DURATION = re.compile("".join(r"(?:(?P<%s>\d+)%s)?" % (unit, unit)
                               for unit, _ in DURATION_UNITS))


def _duration_seconds(raw: Any) -> Optional[int]:
    """Whole seconds of a duration with units (``1h30m``), or None if it has none."""
    text = str(raw).strip().lower()
    match = _DURATION.fullmatch(text) if text else None
    if match is None or not any(match.groups()):
        return None
    return sum(int(match.group(unit)) * size for unit, size in DURATION_UNITS
               if match.group(unit))


def duration(maximum: int, unit: str = "") -> Converter:
    """A converter to whole seconds from 0 to ``maximum``: a bare integer is seconds, or a
    duration with units (``30m``)."""
    whole = whole_number(maximum, unit)

    def convert(raw: Any) -> int:
        if isinstance(raw, bool):
            raise ValueError("is not a duration")
        if isinstance(raw, int) or str(raw).strip().lstrip("-").isdigit():
            return whole(raw)
        value = _duration_seconds(raw)
        if value is None:
            raise ValueError("is not " + DURATION_SYNTAX)
        return whole(value)
    convert.maximum = maximum  # type: ignore[attr-defined]
    return convert


def positive_duration(maximum: float, unit: str = "") -> Converter:
    """A converter to seconds above 0 and at most ``maximum``: fractions allowed for a bare
    number (``0.5``), or a duration (``2m``)."""
    def convert(raw: Any) -> float:
        value = None if isinstance(raw, bool) else _duration_seconds(raw)
        if value is None:
            try:
                value = _positive(raw)
            except ValueError:
                raise ValueError("is not " + DURATION_SYNTAX) from None
        if value <= 0:
            raise ValueError("must be a positive duration")
        if value > maximum:
            raise ValueError(_at_most(maximum, unit))
        return float(value)
    convert.maximum = maximum  # type: ignore[attr-defined]
    return convert


seconds = duration(MAX_SECONDS, " seconds (ten years)")
request_seconds = positive_duration(MAX_REQUEST_TIMEOUT, " seconds (a day)")
workers = whole_number(MAX_CONCURRENCY)
page_size = whole_number(MAX_PAGE_SIZE)
port = whole_number(MAX_PORT)
stops = whole_number(MAX_STOPS_PER_PASS)


def text(raw: Any) -> str:
    return str(raw)


def patterns(raw: Any) -> Tuple[str, ...]:
    """Comma-separated items (a list in a ``.py`` file, or one per repeated option)."""
    items = raw if isinstance(raw, (list, tuple)) else [raw]
    return tuple(part.strip() for item in items for part in str(item).split(",")
                 if part.strip())


def option_patterns(raw: Any) -> Tuple[Tuple[str, str], ...]:
    """``KEY=PATTERN`` pairs, comma-separated (``image=*pytorch*, size=large``)."""
    pairs = []
    for item in patterns(raw):
        key, equals, pattern = item.partition("=")
        if not equals or not key.strip():
            raise ValueError("has %r, which is not KEY=PATTERN" % item)
        pairs.append((key.strip(), pattern.strip()))
    return tuple(pairs)


# How a rule names the default server, whose name is empty: an empty quoted item.
DEFAULT_SERVER_SPELLINGS = frozenset({'""', "''"})


def server_patterns(raw: Any) -> Tuple[str, ...]:
    """Like :func:`patterns`; an item ``""`` (or ``''``) is the default server's empty name."""
    return tuple("" if item in DEFAULT_SERVER_SPELLINGS else item for item in patterns(raw))


def entries(raw: Any) -> Tuple[str, ...]:
    """Whole items that may contain commas themselves (``--rule NAME:k=v,k=v``)."""
    items = raw if isinstance(raw, (list, tuple)) else [raw]
    return tuple(str(item) for item in items)


def log_level(raw: Any) -> str:
    """A log level in any spelling the reference's generations took: ``debug``, ``WARN``,
    ``CRITICAL``/``FATAL``, or the numbers of Python's logging (``30``)."""
    if isinstance(raw, bool):
        raise ValueError("is not a log level")
    text = str(raw).strip().upper()
    if text.isdigit() and int(text) in _LEVEL_NUMBERS:
        return _LEVEL_NUMBERS[int(text)]
    text = _LEVEL_ALIASES.get(text, text)
    if text not in LOG_LEVELS:
        raise ValueError("is not one of " + ", ".join(LOG_LEVELS))
    return text


log_level.choices = LOG_LEVELS  # type: ignore[attr-defined]  # for --help and the man page


def one_of(*choices: str) -> Converter:
    """A converter accepting ``choices`` in any case; the result is spelt as in ``choices``."""
    def convert(raw: Any) -> str:
        for choice in choices:
            if str(raw).strip().lower() == choice.lower():
                return choice
        raise ValueError("is not one of " + ", ".join(choices))
    convert.choices = choices  # type: ignore[attr-defined]  # for --help and the man page
    return convert

