"""Property tests of loading the configuration: whatever the operator (or a broken editor) puts
in a token, the culler starts with a token the hub could have issued and HTTP can carry, or
refuses with a configuration error that does not repeat the token."""

from __future__ import annotations

import codecs
import os
import re
import tempfile

import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from idle_culler_daemon.config import load_config
from idle_culler_daemon.errors import ConfigError
from idle_culler_daemon.options import parse_command_line
from idle_culler_daemon.sources import read_text

SETTINGS = settings(max_examples=300, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# Mostly printable ASCII (what tokens are made of), with any other character mixed in; most
# carry MARK, which no message may then show (a short token could match a word by chance).
MARK = "Zq7Xw9Kp"
token_chars = st.text(st.one_of(st.characters(min_codepoint=0x21, max_codepoint=0x7e),
                                st.characters()), max_size=20)
token_texts = st.one_of(st.builds(lambda a, b: a + MARK + b, token_chars, token_chars),
                        token_chars.filter(bool))


def no_files(path):
    raise FileNotFoundError(2, "No such file or directory", path)


@SETTINGS
@given(token_texts)
@example("abcd1234\n" + MARK)
@example("\ufeff" + MARK)
@example('abcd"1234\\' + MARK)
def test_any_token_is_either_sendable_or_a_config_error_without_it(token):
    env = {"JUPYTERHUB_API_TOKEN": token}
    try:
        config = load_config(parse_command_line([]), env, no_files)
    except ConfigError as exc:
        assert MARK not in str(exc)
        return
    accepted = config.hub.token
    assert re.fullmatch(r"[!-~]{8,}", accepted), repr(accepted)
    prepared = requests.Request("GET", "http://127.0.0.1/", headers={
        "Authorization": "token " + accepted}).prepare()
    prepared.headers["Authorization"].encode("latin-1")


# Bytes that are mostly a config file, with any byte anywhere (other encodings, BOMs, NULs).
INI_START = b"[culler]\ntimeout = 600\n"
PY_START = b"c = get_config()\nc.IdleCuller.timeout = 600\n"
file_bytes = st.one_of(
    st.binary(max_size=64),
    st.tuples(st.sampled_from([INI_START, PY_START, b"", codecs.BOM_UTF8]),
              st.binary(max_size=24), st.sampled_from([b"", b"\n", INI_START]))
    .map(lambda parts: b"".join(parts)),
)


@SETTINGS
@given(file_bytes, st.sampled_from(["c.ini", "c.py", "token"]))
@example(b"[culler]\ntimeout = 600 ; caf\xe9\n", "c.ini")
@example(codecs.BOM_UTF8 + INI_START, "c.ini")
@example(b"caf\xe9-token-value", "token")
def test_any_bytes_in_a_file_give_a_config_or_a_config_error(content, name):
    """Whatever bytes a config or token file holds, loading gives a Config or a
    ConfigError naming the file: never another exception (which would end the daemon on a
    reload)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, name)
        with open(path, "wb") as handle:
            handle.write(content)
        argv = ["--api-token-file=" + path] if name == "token" else ["--config=" + path]
        env = {} if name == "token" else {"JUPYTERHUB_API_TOKEN": "abcd1234secret"}
        try:
            load_config(parse_command_line(argv), env, read_text)
        except ConfigError as exc:
            if name == "token":
                assert path in str(exc)
