"""Property tests of the log formats: whatever a name holds, a record is one line without a
character that could drive a terminal, the name can be read back from it, and a secret in any
field, message or traceback never shows, in any of its escaped forms."""

from __future__ import annotations

import io
import json
import logging
import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from idle_culler_daemon.log import configure_logging, get_logger

SETTINGS = settings(max_examples=300, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069"
                    "\ufeff\ud800-\udfff]")
names = st.text(st.characters(), max_size=16)  # any code point, surrogates included
secrets = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), min_size=8,
                  max_size=24)


def emit(fmt, secret=None, **fields):
    stream = io.StringIO()
    configure_logging("INFO", fmt, {}, secrets=[secret] if secret else [], stream=stream)
    try:
        get_logger("idle_culler_daemon.cull").info("stop", **fields)
    finally:
        logging.getLogger().handlers.clear()
    return stream.getvalue()


def text_value(line, key):
    """The value of ``key=`` in a text line, unquoted."""
    match = re.search(r' %s=("(?:[^"\\]|\\.)*"|\S*)' % key, line)
    raw = match.group(1)
    return json.loads(raw) if raw.startswith('"') else raw


@SETTINGS
@given(names, names)
@example("ann\n2026-11-26T12:00:00Z INFO stop user=root", "")
@example("\ud800", "\x1b[2J")
def test_any_name_is_one_safe_line_and_reads_back(user, server):
    for fmt in ("text", "json"):
        output = emit(fmt, user=user, server=server, reason="idle")
        assert output.endswith("\n") and len(output[:-1].splitlines()) == 1, repr(output)
        assert not UNSAFE.search(output[:-1]), repr(output)
        if fmt == "json":
            record = json.loads(output)
            assert (record["user"], record["server"]) == (user, server)
        else:
            assert (text_value(output, "user"), text_value(output, "server")) == (user, server)


@SETTINGS
@given(secrets, names, names)
@example('abc"def\\ghi', "", "")
def test_a_secret_never_shows_in_any_escaped_form(secret, before, after):
    forms = {secret, json.dumps(secret)[1:-1], repr(secret)[1:-1]}
    for fmt in ("text", "json"):
        output = emit(fmt, secret, user=before + secret + after, error=ValueError(secret))
        assert not any(form in output for form in forms), (secret, output)
