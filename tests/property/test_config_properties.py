"""Property tests of loading the configuration: whatever the operator (or a broken editor) puts
in a token, the culler starts with a token the hub could have issued and HTTP can carry, or
refuses with a configuration error that does not repeat the token."""

from __future__ import annotations

import re

import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from idle_culler_daemon.config import load_config
from idle_culler_daemon.errors import ConfigError
from idle_culler_daemon.options import parse_command_line

SETTINGS = settings(max_examples=300, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# Mostly printable ASCII (what tokens are made of), with any other character mixed in.
token_texts = st.text(st.one_of(st.characters(min_codepoint=0x21, max_codepoint=0x7e),
                                st.characters()), min_size=1, max_size=40)


def no_files(path):
    raise FileNotFoundError(2, "No such file or directory", path)


@SETTINGS
@given(token_texts)
@example("abcd1234\nsecret99")
@example("\ufeffabcd1234secret99")
@example('abcd"1234\\secret')
def test_any_token_is_either_sendable_or_a_config_error_without_it(token):
    env = {"JUPYTERHUB_API_TOKEN": token}
    try:
        config = load_config(parse_command_line([]), env, no_files)
    except ConfigError as exc:
        if len(token.strip()) >= 4:
            assert token.strip() not in str(exc)
        return
    accepted = config.hub.token
    assert re.fullmatch(r"[!-~]{8,}", accepted), repr(accepted)
    prepared = requests.Request("GET", "http://127.0.0.1/", headers={
        "Authorization": "token " + accepted}).prepare()
    prepared.headers["Authorization"].encode("latin-1")
