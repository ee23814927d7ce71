"""The Culler service: reload keeps the old configuration whatever the new files hold."""

import codecs
import logging

import pytest

from idle_culler_daemon.config import load_config
from idle_culler_daemon.options import parse_command_line
from idle_culler_daemon.service import Culler
from idle_culler_daemon.sources import read_text

TOKEN = "s3cr3t-token-value"


@pytest.mark.parametrize("which,broken", [
    ("config", b"[culler]\ntimeout = 900 ; caf\xe9\n"),
    ("config", "[culler]\ntimeout = 900\n".encode("utf-16")),
    ("token", b"caf\xe9-token-value\n"),
    ("token", codecs.BOM_UTF8 + TOKEN.encode()),
])
def test_reload_refuses_files_that_are_not_utf8_and_keeps_running(tmp_path, caplog, which,
                                                                   broken):
    conf, token = tmp_path / "c.ini", tmp_path / "token"
    conf.write_text("[culler]\ntimeout = 600\n", encoding="utf-8")
    token.write_text(TOKEN + "\n", encoding="utf-8")
    values = parse_command_line(["--config=%s" % conf, "--api-token-file=%s" % token])

    def load():
        return load_config(values, {}, read_text)

    culler = Culler(load(), load)
    try:
        (conf if which == "config" else token).write_bytes(broken)
        with caplog.at_level(logging.ERROR):
            culler.reload()
        assert culler.config.culling.timeout == 600 and culler.config.hub.token == TOKEN
        assert "reload-refused" in caplog.text and str(tmp_path) in caplog.text
    finally:
        culler.close()
