"""An https:// --url against a hub that serves plain HTTP says what the likely cause is."""

from idle_culler_daemon.service import plain_http_hint

URL = "https://127.0.0.1:8081/hub/api"


def test_plain_http_hint_for_tls_errors_and_timeouts_on_https():
    for error in ("GET /: SSLError: [SSL: WRONG_VERSION_NUMBER] wrong version number",
                  "GET /: ConnectionError: ... Caused by ReadTimeoutError(... Read timed out."):
        hint = plain_http_hint(URL, error)
        assert "plain HTTP" in hint and "--url=http://127.0.0.1:8081/hub/api" in hint


def test_plain_http_hint_is_silent_otherwise():
    assert plain_http_hint("http://127.0.0.1:8081/hub/api", "Read timed out.") == ""
    assert plain_http_hint(URL, "ConnectionError: [Errno 111] Connection refused") == ""
