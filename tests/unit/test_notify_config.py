"""The notification options: --notify-url, --notify-header-file, --warn-before.

Kept apart from tests/unit/test_config.py so that they move with the options when the option
table is restructured.
"""

import pytest

from idle_culler_daemon.config import load_config, show_config
from idle_culler_daemon.errors import ConfigError
from idle_culler_daemon.options import parse_command_line

TOKEN = "s3cr3t-token-value"
ENV = {"JUPYTERHUB_API_TOKEN": TOKEN}
SLACK = "https://hooks.slack.example/services/T000/B000/XXXXsecretXXXX"


def load(argv, env=ENV, files=None):
    files = files or {}

    def read(path):
        if path in files:
            return files[path]
        raise FileNotFoundError(2, "No such file or directory", path)

    return load_config(parse_command_line(argv), env, read)


def test_notify_options_from_the_command_line_environment_and_file():
    config = load(["--notify-url=" + SLACK, "--warn-before=15m", "--timeout=1h",
                   "--cull-every=5m", "--url=https://hub.example/hub/api"])
    assert config.notify.url == SLACK and config.notify.header is None
    assert config.notify.hub == "https://hub.example/hub/api"
    assert config.culling.warn_before == 900 and not config.warnings
    env = dict(ENV, JUPYTERHUB_IDLE_CULLER_NOTIFY_URL=SLACK,
               JUPYTERHUB_IDLE_CULLER_WARN_BEFORE="10m")
    assert load([], env).notify.url == SLACK and load([], env).culling.warn_before == 600
    files = {"c.ini": "[culler]\nnotify_url = %s\nwarn_before = 1h\n" % SLACK}
    assert load(["--config=c.ini"], files=files).culling.warn_before == 3600


def test_notify_defaults_are_no_webhook_and_no_warnings():
    config = load([])
    assert config.notify is None and config.culling.warn_before == 0
    assert config.secrets == (TOKEN,)


def test_notify_payloads_name_the_public_url_when_known():
    config = load(["--notify-url=" + SLACK, "--server-url-base=https://hub.example.org"])
    assert config.notify.hub == "https://hub.example.org"


@pytest.mark.parametrize("url", ["ftp://hooks.example/" + "k" * 20, "hooks.example/xyzsecret",
                                 "https:///xyzsecret", "https://hooks.example/a b/xyzsecret"])
def test_notify_url_that_is_not_http_is_refused_without_showing_it(url):
    with pytest.raises(ConfigError) as caught:
        load(["--notify-url=" + url])
    assert "--notify-url" in str(caught.value) and "xyzsecret" not in str(caught.value)
    assert "k" * 20 not in str(caught.value)


def test_notify_url_is_a_secret_in_show_config_and_the_log_filter():
    config = load(["--notify-url=" + SLACK, "--notify-header-file=/run/cred/notify-header"],
                  files={"/run/cred/notify-header": "Authorization: Bearer hdr-secret-123\n"})
    text = show_config(config)
    assert "XXXXsecretXXXX" not in text and "hdr-secret-123" not in text
    assert "notify_url = https://hooks.slack.example/<redacted>" in text
    assert config.describe()["notify_url"] == "https://hooks.slack.example/<redacted>"
    assert set(config.secrets) >= {TOKEN, SLACK, "/services/T000/B000/XXXXsecretXXXX",
                                   "Bearer hdr-secret-123"}
    assert config.notify.header == ("Authorization", "Bearer hdr-secret-123")
    assert "XXXXsecretXXXX" not in repr(config) and "hdr-secret-123" not in repr(config)


@pytest.mark.parametrize("contents", ["", "Bearer only-a-value\n", "Authorization:\n",
                                      "Authorization: a\nX-Other: b\n", "Bad Name: value\n",
                                      "Authorization: a\x07b\n"])
def test_notify_header_file_must_hold_one_header_line(contents):
    with pytest.raises(ConfigError) as caught:
        load(["--notify-url=" + SLACK, "--notify-header-file=h"], files={"h": contents})
    assert "--notify-header-file: h must hold one line" in str(caught.value)
    assert "only-a-value" not in str(caught.value)


def test_notify_header_file_that_cannot_be_read_is_named():
    with pytest.raises(ConfigError, match="--notify-header-file: cannot read h: No such file"):
        load(["--notify-url=" + SLACK, "--notify-header-file=h"])


def test_notify_warn_before_shorter_than_the_interval_warns():
    config = load(["--warn-before=5m", "--timeout=1h"])  # passes every 30 minutes
    assert any("--warn-before=300s is shorter than --cull-every=1800s" in warning
               for warning in config.warnings)
    assert not load(["--warn-before=5m", "--timeout=1h", "--cull-every=5m"]).warnings


def test_notify_header_file_without_url_warns():
    config = load(["--notify-header-file=h"])
    assert config.notify is None
    assert any("no effect without --notify-url" in warning for warning in config.warnings)
