"""The webhook's delivery: its own Session, the bounded queue, retries, counts, redaction.

Against a recording receiver on 127.0.0.1 (tests/support/receiver.py); waits are on events.
"""

import io
import logging
import time

import pytest
import requests

from idle_culler_daemon.config import Config, CullSettings, HubSettings, NotifySettings
from idle_culler_daemon.forewarn import SERVER_STOP_SOON, SERVER_STOPPED, Notice
from idle_culler_daemon.log import configure_logging
from idle_culler_daemon.webhook import Webhook, describe
from tests.support.receiver import Receiver

HUB_TOKEN = "hub-token-0123456789abcdef"


def notice(user="alice", event=SERVER_STOPPED):
    return Notice(event, user, "", "idle", 3600, "default", result="stopped")


def hook_for(receiver, header=None, **kwargs):
    kwargs.setdefault("backoff_s", 0)
    return Webhook(NotifySettings(url=receiver.url, header=header, hub="https://hub.example",
                                  read_timeout=2), **kwargs)


@pytest.fixture
def receiver():
    with Receiver() as hook:
        yield hook


def test_webhook_posts_one_json_object_per_notice_with_no_credential_of_its_own(receiver):
    hook = hook_for(receiver)
    try:
        assert hook.send(notice("alice")) and hook.send(notice("bob"))
        first, second = receiver.wait_for(2)
        assert hook.idle(5)
    finally:
        hook.close(1)
    assert first.path == "/hook/T0/B0/secretkey"
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["User-Agent"].startswith("jupyterhub-idle-culler-daemon/")
    assert "Authorization" not in first.headers and "Cookie" not in first.headers
    assert [item.json()["user"] for item in (first, second)] == ["alice", "bob"]
    assert first.json()["hub"] == "https://hub.example"
    assert hook.counts() == ({"server-stopped": 2}, 0, 0)


def test_webhook_sends_the_header_of_the_header_file_and_keeps_no_cookie(receiver):
    receiver.headers = {"Set-Cookie": "session=stolen; Path=/"}
    hook = hook_for(receiver, header=("Authorization", "Bearer webhook-secret-1234"))
    try:
        hook.send(notice("alice"))
        receiver.wait_for(1)
        hook.send(notice("bob"))
        first, second = receiver.wait_for(2)
    finally:
        hook.close(1)
    assert first.headers["Authorization"] == "Bearer webhook-secret-1234"
    assert "Cookie" not in second.headers


def test_webhook_does_not_follow_a_redirect_and_counts_it_failed(receiver):
    receiver.status, receiver.headers = 302, {"Location": "/elsewhere"}
    hook = hook_for(receiver)
    try:
        hook.send(notice())
        receiver.wait_for(1)
        assert hook.idle(5)
    finally:
        hook.close(1)
    assert [item.path for item in receiver.received()] == ["/hook/T0/B0/secretkey"]
    assert hook.counts() == ({}, 1, 0)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_webhook_retries_5xx_and_429_a_few_times_then_counts_one_failure(receiver, status):
    receiver.status = status
    hook = hook_for(receiver, retries=2)
    try:
        hook.send(notice())
        assert hook.idle(10)
    finally:
        hook.close(1)
    assert len(receiver.received()) == 3  # the first attempt and two retries
    assert hook.counts() == ({}, 1, 0)


def test_webhook_a_full_queue_drops_the_newest_and_counts_it():
    with Receiver(mode="hang") as receiver:
        hook = hook_for(receiver, queue_size=2)
        try:
            assert hook.send(notice("in-flight"))
            receiver.wait_for(1)  # the sender is now held by the receiver
            assert hook.send(notice("queued-1")) and hook.send(notice("queued-2"))
            assert not hook.send(notice("newest"))
            assert hook.counts() == ({}, 0, 1)
            receiver.release()
            receiver.mode = "ok"
            assert hook.idle(10)
        finally:
            hook.close(1)
        users = [item.json()["user"] for item in receiver.received()]
    assert "newest" not in users and users[-2:] == ["queued-1", "queued-2"]


def test_webhook_close_is_bounded_and_counts_what_it_could_not_send():
    with Receiver(mode="hang") as receiver:
        hook = hook_for(receiver)
        hook.send(notice("a"))
        receiver.wait_for(1)
        hook.send(notice("b"))
        hook.send(notice("c"))
        started = time.monotonic()
        hook.close(0.2)
        took = time.monotonic() - started
        assert took < 2
        assert hook.counts() == ({}, 0, 3)  # the one in flight and the two queued
        assert not hook.send(notice("after"))  # closed: counted, not sent
        assert hook.counts()[2] == 4


def test_webhook_close_drains_the_queue_when_the_receiver_answers(receiver):
    hook = hook_for(receiver)
    for index in range(5):
        hook.send(notice("u%d" % index))
    hook.close(5)
    assert hook.counts() == ({"server-stopped": 5}, 0, 0)
    assert len(receiver.received()) == 5


def test_webhook_report_warns_once_per_call_and_never_names_the_url(unused_port):
    url = "http://127.0.0.1:%d/services/T000/B000/XXXXsecretXXXX" % unused_port
    settings = NotifySettings(url=url, read_timeout=1)
    config = Config(hub=HubSettings(api_url="http://127.0.0.1:1/hub/api", token=HUB_TOKEN),
                    culling=CullSettings(), cull_every=60, concurrency=1, notify=settings)
    stream = io.StringIO()
    configure_logging("DEBUG", "text", secrets=config.secrets, stream=stream)
    hook = Webhook(settings, retries=1, backoff_s=0)
    try:
        hook.send(notice())
        hook.send(notice())
        assert hook.idle(10)
        hook.report()
        hook.report()  # nothing new: no second line
        logging.getLogger("idle_culler_daemon.test").error("the url was %s", url)
    finally:
        hook.close(1)
        logging.getLogger().handlers.clear()
    text = stream.getvalue()
    assert text.count("event=webhook-failed") == 1
    assert "failed=2" in text and "error=\"ConnectionError (" in text
    assert "XXXXsecretXXXX" not in text and "/services/" not in text
    assert hook.counts() == ({}, 2, 0)


def test_webhook_describe_keeps_the_urls_path_out_of_an_error(unused_port):
    url = "http://127.0.0.1:%d/services/T000/B000/XXXXsecretXXXX" % unused_port
    with pytest.raises(requests.RequestException) as caught:
        requests.post(url, json={}, timeout=1)
    assert "XXXXsecretXXXX" in str(caught.value)  # what requests says: never logged
    assert describe(caught.value) == "ConnectionError (NewConnectionError)"


def test_webhook_settings_keep_the_url_and_header_out_of_repr():
    settings = NotifySettings(url="https://hooks.example/T/B/keykeykey",
                              header=("Authorization", "Bearer sssssssss"))
    assert "keykeykey" not in repr(settings) and "sssssssss" not in repr(settings)
    assert set(settings.secrets) >= {"https://hooks.example/T/B/keykeykey", "/T/B/keykeykey",
                                     "Bearer sssssssss"}


def test_webhook_time_is_the_time_of_handing_over(receiver):
    from datetime import datetime, timezone

    fixed = datetime(2026, 12, 3, 14, 0, tzinfo=timezone.utc)
    hook = hook_for(receiver, clock=lambda: fixed)
    try:
        hook.send(Notice(SERVER_STOP_SOON, "alice", "", "idle", 10, "default",
                         at=datetime(2026, 12, 3, 14, 5, tzinfo=timezone.utc)))
        (item,) = receiver.wait_for(1)
    finally:
        hook.close(1)
    assert item.json()["time"] == "2026-12-03T14:00:00Z"
    assert item.json()["text"] == ("The server of alice will be stopped at 14:05 UTC unless "
                                   "it is used before then.")
