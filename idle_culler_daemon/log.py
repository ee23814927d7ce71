"""Logging: events with named fields, written as logfmt text or one JSON object per line.

The package logs through :func:`get_logger`, whose methods take an event name and its fields
by name: ``log.info("stop", user="ann", server="-", reason="idle")``. The fields travel with
the record (an :class:`Event` as the message), so the formatters never have to recover them
from a format string. Secrets are redacted from each value before it is quoted, and from the
finished line (tracebacks included).

Text lines are logfmt from the first token: ``time=... level=INFO event=stop user=ann ...``.
JSON lines keep each field's type (numbers, booleans, null) and add ``message``, the same line
as text for humans. Under systemd (``$JOURNAL_STREAM`` set) every line, in either format,
starts with a ``<N>`` syslog priority, which journald strips and keeps as the entry's
priority, so ``journalctl -p err`` works; text lines then leave the time to journald.
"""

import json
import logging
import re
import sys
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, TextIO, Tuple

PACKAGE_LOGGER = "idle_culler_daemon"
REDACTED = "<redacted>"
#: JupyterHub's tokens have at least this many characters, and the culler refuses shorter ones
#: (``sources.check_token``); shorter secrets are not redacted: hiding every "x" of every line
#: would only garble the log.
MIN_TOKEN_LENGTH = 8
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}
_NEEDS_QUOTES = re.compile(r'[\s"=]')
# Characters that must never reach a line or a terminal raw, whoever chose them (a user name
# comes from the hub): C0 and C1 controls and DEL (new lines, cursor moves, bells), line and
# paragraph separators, zero-width and bidirectional formatting (text shown in another order),
# the byte-order mark, and lone surrogates (which cannot even be encoded).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e"
                     "\u2060-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff]")

Fields = List[Tuple[str, Any]]


def _text_value(value: Any) -> str:
    if value is None:
        return "-"
    return str(value)


def _escape_unsafe(text: str) -> str:
    """``text`` with every unsafe character escaped as JSON does: ``\\u`` and four hex digits."""
    return _UNSAFE.sub(lambda match: "\\u%04x" % ord(match.group()), text)


def json_line(value: Any) -> str:
    """``value`` as one line of JSON that stays one line: UTF-8 as it is, but every unsafe
    character (line separators, controls, lone surrogates, ...) escaped as ``\\u`` and four
    hex digits, so ``splitlines()`` cannot cut it and any encoder can write it."""
    return _escape_unsafe(json.dumps(value, ensure_ascii=False, default=str))


def display(text: str) -> str:
    """A value as one safe word: as it is, or in double quotes with JSON escapes when it is
    empty or holds spaces, quotes, ``=`` or any unsafe character. ``json.loads`` of a quoted
    value gives the original back."""
    if text == "" or _NEEDS_QUOTES.search(text) or _UNSAFE.search(text):
        return _escape_unsafe(json.dumps(text, ensure_ascii=False))
    return text


def render(event: str, fields: Fields) -> str:
    """``event key=value ...``, quoting values that hold spaces, quotes or ``=``."""
    return "%s %s" % (event, logfmt(fields)) if fields else event


def logfmt(fields: Fields) -> str:
    """``key=value key=value``: each value as one safe word (:func:`display`)."""
    return " ".join("%s=%s" % (key, display(_text_value(value))) for key, value in fields)


def _json_value(value: Any) -> Any:
    """A field as JSON: numbers, booleans and None keep their type, the rest is text."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    return str(value)


class Event:
    """A log message made of an event name and its fields; ``str()`` is the text form."""

    __slots__ = ("name", "fields")

    def __init__(self, name: str, fields: Mapping[str, Any]) -> None:
        self.name = name
        self.fields: Fields = list(fields.items())

    def __str__(self) -> str:
        return render(self.name, self.fields)


class EventLogger:
    """A ``logging.Logger`` whose methods take an event name and named fields."""

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)

    def _emit(self, level: int, event: str, fields: Dict[str, Any], exc_info: bool = False
              ) -> None:
        if self.logger.isEnabledFor(level):
            # stacklevel 3: the caller of debug()/info()/..., not this helper
            self.logger.log(level, Event(event, fields), exc_info=exc_info, stacklevel=3)

    def debug(self, event: str, **fields: Any) -> None:
        self._emit(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit(logging.ERROR, event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        """An ERROR with the traceback of the exception being handled."""
        self._emit(logging.ERROR, event, fields, exc_info=True)

    def enabled(self, level: int) -> bool:
        return self.logger.isEnabledFor(level)


def get_logger(name: str) -> EventLogger:
    return EventLogger(name)


def record_fields(record: logging.LogRecord) -> Tuple[str, Fields]:
    """The event and fields of a record; records of other loggers become event ``log``."""
    if isinstance(record.msg, Event):
        return record.msg.name, record.msg.fields
    return "log", [("logger", record.name), ("message", record.getMessage())]


def _escaped_forms(secret: str) -> List[str]:
    """The secret as it reads once quoted: JSON (both ways) and Python escapes."""
    return [json.dumps(secret, ensure_ascii=False)[1:-1], json.dumps(secret)[1:-1],
            repr(secret)[1:-1]]


class _Redacting(logging.Formatter):
    """Base formatter that keeps every secret out of what it writes.

    Secrets are replaced in the raw values, before anything is quoted or escaped (a quoted
    ``"`` or ``\\`` would no longer match), and once more in the finished line, in their raw
    and escaped forms, for what the raw values did not cover.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = sorted({secret for secret in secrets
                                if secret and len(secret) >= MIN_TOKEN_LENGTH},
                               key=len, reverse=True)
        self._forms = sorted({form for secret in self._secrets
                              for form in [secret] + _escaped_forms(secret)},
                             key=len, reverse=True)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def _redact_line(self, line: str) -> str:
        for form in self._forms:
            line = line.replace(form, REDACTED)
        return line

    def _clean_fields(self, record: logging.LogRecord) -> Tuple[str, Fields]:
        """The event and its fields, redacted before any quoting: numbers, booleans and None
        as they are (they keep their types in JSON), everything else as redacted text."""
        event, fields = record_fields(record)
        return event, [(key, value if value is None or isinstance(value, (bool, int, float))
                        else self._redact(str(value))) for key, value in fields]

    def _traceback(self, record: logging.LogRecord) -> str:
        """The traceback, redacted; its lines stay lines, nothing else unsafe stays raw."""
        if not record.exc_info:
            return ""
        lines = self._redact(self.formatException(record.exc_info)).split("\n")
        return "\n".join(_escape_unsafe(line) for line in lines)


def _priority(record: logging.LogRecord) -> str:
    """The ``<N>`` syslog priority prefix that journald turns into the entry's priority."""
    return "<%d>" % _PRIORITY.get(record.levelno, 6)


class TextFormatter(_Redacting):
    """``time=2026-11-26T07:40:00Z level=INFO event=stop user=ann server=- reason=idle ...``

    Under journald: ``<6>level=INFO event=stop ...`` (journald records the time itself).
    """

    def __init__(self, secrets: Iterable[str] = (), journal: bool = False) -> None:
        super().__init__(secrets)
        self._journal = journal

    def format(self, record: logging.LogRecord) -> str:
        event, fields = self._clean_fields(record)
        head: Fields = [("level", record.levelname), ("event", event)]
        if self._journal:
            line = _priority(record) + logfmt(head + fields)
        else:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
            line = logfmt([("time", stamp)] + head + fields)
        if record.exc_info:
            line += "\n" + self._traceback(record)
        return self._redact_line(line)


class JsonFormatter(_Redacting):
    """One JSON object per line: ``time``, ``level``, ``event``, ``message`` and the fields.

    Field values keep their JSON types; ``message`` is the event as a line of text (for a
    record of another library, its own message). Under journald the object is preceded by the
    ``<N>`` priority, which journald strips.
    """

    def __init__(self, secrets: Iterable[str] = (), journal: bool = False) -> None:
        super().__init__(secrets)
        self._journal = journal

    def format(self, record: logging.LogRecord) -> str:
        event, fields = self._clean_fields(record)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        payload: Dict[str, Any] = {"time": "%s.%03dZ" % (stamp, record.msecs),
                                   "level": record.levelname, "event": event}
        if not isinstance(record.msg, Event):  # another library's record: its own message
            payload["message"] = dict(fields).get("message", "")
        else:
            payload["message"] = render(event, fields)
        for key, value in fields:
            payload.setdefault(key, _json_value(value))
        if record.exc_info:
            payload["traceback"] = self._traceback(record)
        line = json_line(payload)
        return self._redact_line((_priority(record) if self._journal else "") + line)


def configure_logging(level: str = "INFO", log_format: str = "text",
                      env: Optional[Mapping[str, str]] = None, secrets: Iterable[str] = (),
                      stream: Optional[TextIO] = None) -> logging.Handler:
    """Send every log record to ``stream`` (stderr) in the chosen format; return the handler.

    Replaces handlers installed by an earlier call, so a reload can change level and format.
    """
    env = env or {}
    journal = bool(env.get("JOURNAL_STREAM"))
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    handler.setFormatter(formatter(secrets, journal=journal))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger(PACKAGE_LOGGER).setLevel(getattr(logging, level))
    # urllib3 warns about each retry and full pools: the hub client logs its own line for each
    # failed attempt (hub-retry), so urllib3 is heard only at DEBUG, or for its errors.
    logging.getLogger("urllib3").setLevel(logging.DEBUG if level == "DEBUG" else logging.ERROR)
    logging.captureWarnings(True)
    return handler
