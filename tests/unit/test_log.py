"""Log formats: logfmt text, typed JSON objects, journald priorities, and no secrets."""

import io
import json
import logging
import re

import pytest

from idle_culler_daemon.log import configure_logging, get_logger

TOKEN = "tok-123456-secret"
# One logfmt pair: a key, '=', then a bare value or a double-quoted one with escapes.
LOGFMT_PAIR = re.compile(r'([A-Za-z_][\w.-]*)=("(?:[^"\\]|\\.)*"|[^\s"=]*)(?: |$)')


def logfmt_pairs(line):
    """Parse a whole logfmt line; fail if any part of it is not a key=value pair."""
    pairs, position = [], 0
    while position < len(line):
        match = LOGFMT_PAIR.match(line, position)
        assert match, "not logfmt from offset %d: %r" % (position, line[position:])
        value = match.group(2)
        pairs.append((match.group(1), json.loads(value) if value.startswith('"') else value))
        position = match.end()
    return pairs


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
                                               idle_s=700, age_s=None)
    line = stream.getvalue().strip()
    assert re.fullmatch(r'time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ level=INFO event=stop '
                        r'user="zoë b" server=- reason=idle idle_s=700 age_s=-', line), line


def test_text_format_is_logfmt_from_the_first_token(emit):
    stream = emit("text", level="DEBUG")
    log = get_logger("idle_culler_daemon.cull")
    log.info("stop", user='say "hi"', server="a=b", detail="two words", empty="", n=3)
    logging.getLogger("idle_culler_daemon.x").warning("free text = %s", "yes")
    for line in stream.getvalue().splitlines():
        keys = [key for key, _ in logfmt_pairs(line)]
        assert keys[:3] == ["time", "level", "event"], line
    first = dict(logfmt_pairs(stream.getvalue().splitlines()[0]))
    assert (first["user"], first["server"], first["detail"], first["empty"]) == (
        'say "hi"', "a=b", "two words", "")


def test_json_format_carries_every_field(emit):
    stream = emit("json")
    get_logger("idle_culler_daemon.cull").info("stop", user="ann", server="-", reason="idle",
                                               idle_s=700, age_s=800, rule="default")
    record = json.loads(stream.getvalue())
    assert record["event"] == "stop" and record["level"] == "INFO" and "time" in record
    assert (record["user"], record["idle_s"], record["rule"]) == ("ann", 700, "default")


def test_json_values_keep_their_types_and_carry_a_message(emit):
    stream = emit("json")
    get_logger("idle_culler_daemon.report").info("pass-done", users=3, took_s=0.25,
                                                 dry_run=True, next=None, user="zoë")
    record = json.loads(stream.getvalue())
    assert (record["users"], record["took_s"], record["dry_run"], record["next"]) == (
        3, 0.25, True, None)
    assert record["message"] == "pass-done users=3 took_s=0.25 dry_run=True next=- user=zoë"


def test_json_format_wraps_foreign_records(emit):
    stream = emit("json")
    logging.getLogger("idle_culler_daemon.x").warning("free text with %d%% and spaces", 5)
    logging.getLogger("urllib3.connectionpool").error("Retrying (%s)", "x")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["message"] == "free text with 5% and spaces"
    assert lines[1]["logger"] == "urllib3.connectionpool"
    assert lines[1]["message"] == "Retrying (x)"


def test_urllib3_warnings_are_shown_only_at_debug(emit):
    stream = emit("text", level="INFO")
    logging.getLogger("urllib3.connectionpool").warning("Retrying (Retry(total=2))")
    logging.getLogger("urllib3.connectionpool").error("a real error")
    assert "Retrying" not in stream.getvalue() and "a real error" in stream.getvalue()
    stream = emit("text", level="DEBUG")
    logging.getLogger("urllib3.connectionpool").warning("Retrying (Retry(total=2))")
    assert "Retrying" in stream.getvalue()


def test_journal_stream_gives_priorities_without_timestamps(emit):
    stream = emit("text", {"JOURNAL_STREAM": "8:1234"})
    get_logger("idle_culler_daemon.daemon").warning("pass-overran", overrun_s=3)
    assert stream.getvalue() == "<4>level=WARNING event=pass-overran overrun_s=3\n"


def test_journal_stream_gives_priorities_to_json_lines_too(emit):
    stream = emit("json", {"JOURNAL_STREAM": "8:1234"})
    get_logger("idle_culler_daemon.daemon").error("pass-aborted", reason="hub-error")
    get_logger("idle_culler_daemon.daemon").info("pass-done", users=1)
    error, info = stream.getvalue().splitlines()
    assert error.startswith("<3>{") and info.startswith("<6>{")
    assert json.loads(error[3:])["event"] == "pass-aborted"


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
