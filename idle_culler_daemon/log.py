"""Logging set-up: ``key=value`` text or one JSON object per line, with secrets redacted.

The package logs with lazy ``%`` arguments in the shape ``"event key=%s key=%s"``. The
formatters here split that shape back into an event and fields, so the text format can quote
values that contain spaces and the JSON format can carry every field under its own key. Under
systemd (``$JOURNAL_STREAM`` set) text lines drop the timestamp, which journald adds, and start
with a ``<N>`` syslog priority so that ``journalctl -p warning`` works.
"""

import json
import logging
import re
import sys
import time
from typing import Iterable, List, Mapping, Optional, TextIO, Tuple

PACKAGE_LOGGER = "idle_culler_daemon"
REDACTED = "<redacted>"
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}
_KEY = re.compile(r"^[a-z_][a-z0-9_]*$")
_NEEDS_QUOTES = re.compile(r'[\s"=]')


def record_fields(record: logging.LogRecord) -> Tuple[str, List[Tuple[str, object]]]:
    """Split a record into its event word and ``(key, value)`` fields.

    Records that do not follow the package's shape (third-party loggers, or a format string
    this function cannot pair with its arguments) become event ``log`` with a ``message``.
    """
    message = record.msg if isinstance(record.msg, str) else None
    args = record.args if isinstance(record.args, tuple) else ()
    if message and record.name.startswith(PACKAGE_LOGGER):
        tokens = message.split(" ")
        fields: List[Tuple[str, object]] = []
        position = 0
        try:
            for token in tokens[1:]:
                key, equals, template = token.partition("=")
                if not equals or not _KEY.match(key):
                    raise ValueError(token)
                count = template.count("%") - 2 * template.count("%%")
                value = template % args[position:position + count] if count else template
                position += count
                fields.append((key, value))
            if position == len(args) and _KEY.match(tokens[0].replace("-", "_")):
                return tokens[0], fields
        except (ValueError, TypeError):
            pass
    return "log", [("logger", record.name), ("message", record.getMessage())]


def _quote(value: object) -> str:
    text = str(value)
    if text == "" or _NEEDS_QUOTES.search(text):
        return json.dumps(text, ensure_ascii=False)
    return text


class _Redacting(logging.Formatter):
    """Base formatter that removes every secret from the finished line."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = [secret for secret in secrets if secret]

    def _redact(self, line: str) -> str:
        for secret in self._secrets:
            line = line.replace(secret, REDACTED)
        return line


class TextFormatter(_Redacting):
    """``2026-11-26T07:40:00Z INFO stop user=ann server=- reason=idle ...``"""

    def __init__(self, secrets: Iterable[str] = (), journal: bool = False) -> None:
        super().__init__(secrets)
        self._journal = journal

    def format(self, record: logging.LogRecord) -> str:
        event, fields = record_fields(record)
        body = " ".join([event] + ["%s=%s" % (key, _quote(value)) for key, value in fields])
        if self._journal:
            line = "<%d>%s" % (_PRIORITY.get(record.levelno, 6), body)
        else:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
            line = "%s %s %s" % (stamp, record.levelname, body)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return self._redact(line)


class JsonFormatter(_Redacting):
    """One JSON object per line: ``time``, ``level``, ``event`` and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        event, fields = record_fields(record)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        payload = {"time": "%s.%03dZ" % (stamp, record.msecs), "level": record.levelname,
                   "event": event}
        for key, value in fields:
            payload.setdefault(key, value)
        if record.exc_info:
            payload["traceback"] = self.formatException(record.exc_info)
        return self._redact(json.dumps(payload, ensure_ascii=False, default=str))


def configure_logging(level: str = "INFO", log_format: str = "text",
                      env: Optional[Mapping[str, str]] = None, secrets: Iterable[str] = (),
                      stream: Optional[TextIO] = None) -> logging.Handler:
    """Send every log record to ``stream`` (stderr) in the chosen format; return the handler.

    Replaces handlers installed by an earlier call, so a reload can change level and format.
    """
    env = env or {}
    handler = logging.StreamHandler(stream or sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter(secrets))
    else:
        handler.setFormatter(TextFormatter(secrets, journal=bool(env.get("JOURNAL_STREAM"))))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger(PACKAGE_LOGGER).setLevel(getattr(logging, level))
    if level == "DEBUG":
        logging.getLogger("urllib3").setLevel(logging.DEBUG)  # shows each retry
    else:
        logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.captureWarnings(True)
    return handler
