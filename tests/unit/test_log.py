"""Log formats: key=value text, JSON objects, journald priorities, and no secrets."""

import io
import json
import logging
import re

import pytest

from idle_culler_daemon.log import configure_logging, get_logger

TOKEN = "tok-123456-secret"


@pytest.fixture
def emit():
    def _emit(fmt, env=None, level="INFO"):
        stream = io.StringIO()
        configure_logging(level, fmt, env or {}, secrets=[TOKEN], stream=stream)
        return stream
    yield _emit
    logging.getLogger().handlers.clear()


def test_text_format_has_event_and_quoted_fields(emit):
    stream = emit("text")
    get_logger("idle_culler_daemon.cull").info("stop", user="zoë b", server="-", reason="idle",
                                               idle_s=700)
    line = stream.getvalue().strip()
    assert line.endswith('INFO stop user="zoë b" server=- reason=idle idle_s=700')


def test_json_format_carries_every_field(emit):
    stream = emit("json")
    get_logger("idle_culler_daemon.cull").info("stop", user="ann", server="-", reason="idle",
                                               idle_s=700, age_s=800, rule="default")
    record = json.loads(stream.getvalue())
    assert record["event"] == "stop" and record["level"] == "INFO" and "time" in record
    assert (record["user"], record["idle_s"], record["rule"]) == ("ann", "700", "default")


def test_json_format_wraps_foreign_records(emit):
    stream = emit("json")
    logging.getLogger("idle_culler_daemon.x").warning("free text with %d%% and spaces", 5)
    logging.getLogger("urllib3.connectionpool").warning("Retrying (%s)", "x")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["message"] == "free text with 5% and spaces"
    assert lines[1]["logger"] == "urllib3.connectionpool"


def test_journal_stream_gives_priorities_without_timestamps(emit):
    stream = emit("text", {"JOURNAL_STREAM": "8:1234"})
    get_logger("idle_culler_daemon.daemon").warning("pass-overran", overrun_s=3)
    assert stream.getvalue() == "<4>pass-overran overrun_s=3\n"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_token_never_reaches_a_line(emit, fmt):
    stream = emit(fmt, level="DEBUG")
    log = get_logger("idle_culler_daemon.hub")
    log.error("pass-aborted", error="Authorization: token " + TOKEN)
    try:
        raise RuntimeError("boom " + TOKEN)
    except RuntimeError:
        log.exception("crash")
    assert TOKEN not in stream.getvalue() and "<redacted>" in stream.getvalue()


QUOTED_TOKEN = 'tok"en\\0123456'  # a " and a \ : escaped by both formats when quoted


def escaped_forms(secret):
    """The secret and the forms quoting gives it (JSON and Python escapes)."""
    return {secret, json.dumps(secret)[1:-1], repr(secret)[1:-1]}


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_token_with_quotes_and_backslashes_is_redacted_in_every_part_of_a_line(fmt):
    stream = io.StringIO()
    configure_logging("DEBUG", fmt, {}, secrets=[QUOTED_TOKEN], stream=stream)
    try:
        log = get_logger("idle_culler_daemon.hub")
        log.error("pass-aborted", error="refused " + QUOTED_TOKEN, cause=ValueError(QUOTED_TOKEN),
                  count=3)
        logging.getLogger("urllib3.connectionpool").warning("Retrying %s", QUOTED_TOKEN)
        try:
            raise RuntimeError("boom " + QUOTED_TOKEN)
        except RuntimeError:
            log.exception("crash")
    finally:
        logging.getLogger().handlers.clear()
    output = stream.getvalue()
    assert not any(form in output for form in escaped_forms(QUOTED_TOKEN)), output
    assert output.count("<redacted>") >= 4


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_secret_too_short_to_be_a_token_is_not_redacted_everywhere(fmt):
    stream = io.StringIO()
    configure_logging("INFO", fmt, {}, secrets=["x", "ab"], stream=stream)
    try:
        get_logger("idle_culler_daemon.cull").info("stop", user="x-ray", server="lab")
    finally:
        logging.getLogger().handlers.clear()
    assert "<redacted>" not in stream.getvalue() and "x-ray" in stream.getvalue()


# Names that would forge a line, move the cursor, ring the bell or reorder the text.
HOSTILE_NAMES = ["ann\n2026-11-26T12:00:00Z INFO stop user=root", "ann\r\x1b[2K", "bel\x07l",
                 "c1\x9b31m", "del\x7f", "sep\u2028arator", "rlo\u202egnp.exe", "nul\x00",
                 "bom\ufeff", "tab\there", "zw\u200bsp"]
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069"
                    "\ufeff]")


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_text_line_escapes_control_characters_and_keeps_the_name_recoverable(emit, name):
    stream = emit("text")
    get_logger("idle_culler_daemon.cull").info("stop", user=name, server=name, reason="idle")
    output = stream.getvalue()
    assert output.count("\n") == 1 and output.endswith("\n")
    assert not UNSAFE.search(output[:-1]), repr(output)
    quoted = re.search(r'user=("(?:[^"\\]|\\.)*") ', output).group(1)
    assert json.loads(quoted) == name


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_json_line_escapes_control_characters_and_keeps_the_name(emit, name):
    stream = emit("json")
    get_logger("idle_culler_daemon.cull").info("stop", user=name, server=name, reason="idle")
    output = stream.getvalue()
    assert output.count("\n") == 1 and not UNSAFE.search(output[:-1]), repr(output)
    assert json.loads(output)["user"] == name
