"""The systemd notifier against a real AF_UNIX datagram socket (path and abstract name).

Each test builds the notifier from a dict env with an injected clock, so nothing here
depends on the process environment or sleeps. To prove that nothing else was sent, a
test sends a last STATUS= marker and reads up to it: datagrams on one AF_UNIX socket
arrive in order.
"""

import logging
import os
import time

import pytest

from idle_culler_daemon import notify
from idle_culler_daemon.notify import Notifier, sanitize_status, watchdog_interval
from tests.notify_listener import NotifyListener

PID = os.getpid()
TIMEOUT = 2.0  # upper bound for one datagram to arrive on loopback; normally microseconds


class ManualClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now



def sent_since_last_marker(listener, notifier):
    """What the notifier sent since the previous call (or the start), up to a new marker."""
    markers = [i for i, m in enumerate(listener.messages)
               if (m.get("STATUS") or "").startswith("marker-")]
    start = markers[-1] + 1 if markers else 0
    marker = f"marker-{len(markers)}"
    notifier.status(marker)
    listener.wait_for(lambda m: m.get("STATUS") == marker, TIMEOUT)
    return listener.messages[start:-1]


def test_notifier_ready_arrives_from_our_pid(listener):
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": listener.notify_socket}, PID)

    notifier.ready()

    message = listener.wait_for(lambda m: True, TIMEOUT)
    assert message.raw == b"READY=1"
    assert message.pid == PID  # what NotifyAccess=main checks
    assert notifier.enabled


def test_notifier_ready_with_status_is_one_datagram(listener):
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": listener.notify_socket}, PID)

    notifier.ready("waiting for first pass")

    message = listener.wait_for(lambda m: True, TIMEOUT)
    assert message.items == [("READY", "1"), ("STATUS", "waiting for first pass")]


def test_notifier_status_with_non_ascii_user_name_arrives_escaped(listener):
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": listener.notify_socket}, PID)

    notifier.status("stopped user=jürgen server=🚀 users=3")

    message = listener.wait_for(lambda m: m.has("STATUS"), TIMEOUT)
    assert message.raw.isascii()
    assert message.get("STATUS") == "stopped user=j\\xfcrgen server=\\U0001f680 users=3"


def test_notifier_status_caps_long_text(listener):
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": listener.notify_socket}, PID)

    notifier.status("ü" * 5000)

    status = listener.wait_for(lambda m: m.has("STATUS"), TIMEOUT).get("STATUS")
    assert len(status) == notify.STATUS_MAX_CHARS
    assert status.startswith("\\xfc") and status.endswith("...")


def test_notifier_status_control_characters_cannot_inject_lines(listener):
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": listener.notify_socket}, PID)

    notifier.status("user=evil\nREADY=1\x00\x1b[31m\r\n\x85done")

    message = listener.wait_for(lambda m: True, TIMEOUT)
    assert message.items == [("STATUS", "user=evil READY=1[31m done")]


def test_notifier_stopping_carries_status_in_same_datagram(listener):
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": listener.notify_socket}, PID)

    notifier.stopping("stopping after signal")

    message = listener.wait_for(lambda m: True, TIMEOUT)
    assert message.items == [("STOPPING", "1"), ("STATUS", "stopping after signal")]


def test_notifier_heartbeat_pings_at_most_once_per_half_interval(listener):
    clock = ManualClock()
    env = {"NOTIFY_SOCKET": listener.notify_socket, "WATCHDOG_USEC": "10000000",
           "WATCHDOG_PID": str(PID)}
    notifier = Notifier.from_environ(env, PID, monotonic=clock)
    assert (notifier.watchdog_s, notifier.tick_s) == (10.0, 2.5)

    sent_at = []
    for now in (0.0, 2.5, 4.99, 5.0, 7.5, 9.99, 10.0, 10.0, 12.5, 15.1):
        clock.now = 1000.0 + now
        notifier.heartbeat()
        if sent_since_last_marker(listener, notifier):
            sent_at.append(now)

    assert sent_at == [0.0, 5.0, 10.0, 15.1]
    pings = [m for m in listener.messages if m.has("WATCHDOG")]
    assert [m.raw for m in pings] == [b"WATCHDOG=1"] * 4
    assert {m.pid for m in pings} == {PID}


def test_notifier_heartbeat_without_watchdog_pid_still_pings(listener):
    env = {"NOTIFY_SOCKET": listener.notify_socket, "WATCHDOG_USEC": "400000"}
    notifier = Notifier.from_environ(env, PID, monotonic=ManualClock())

    notifier.heartbeat()

    assert listener.wait_for(lambda m: True, TIMEOUT).raw == b"WATCHDOG=1"
    assert notifier.tick_s == pytest.approx(0.1)


def test_notifier_heartbeat_sends_nothing_when_watchdog_pid_is_another_pid(listener):
    clock = ManualClock()
    env = {"NOTIFY_SOCKET": listener.notify_socket, "WATCHDOG_USEC": "400000",
           "WATCHDOG_PID": str(PID + 1)}
    notifier = Notifier.from_environ(env, PID, monotonic=clock)

    for step in range(20):
        clock.now += step
        notifier.heartbeat()

    assert sent_since_last_marker(listener, notifier) == []
    assert notifier.watchdog_s is None and notifier.tick_s == notify.DEFAULT_TICK_S


def test_notifier_heartbeat_is_noop_without_watchdog(listener):
    clock = ManualClock()
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": listener.notify_socket}, PID,
                                     monotonic=clock)
    for step in range(5):
        clock.now += 100 * step
        notifier.heartbeat()

    assert sent_since_last_marker(listener, notifier) == []


def test_notifier_uses_given_env_not_process_environment(listener, tmp_path, monkeypatch):
    with NotifyListener.bind_path(tmp_path, "other.sock") as decoy:
        monkeypatch.setenv("NOTIFY_SOCKET", decoy.notify_socket)
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": listener.notify_socket}, PID)

        notifier.ready()
        listener.wait_for(lambda m: m.has("READY"), TIMEOUT)
        decoy_notifier = Notifier.from_environ({"NOTIFY_SOCKET": decoy.notify_socket}, PID)
        decoy_notifier.status("marker")

        assert decoy.wait_for(lambda m: True, TIMEOUT).raw == b"STATUS=marker"
        assert [m.raw for m in listener.messages] == [b"READY=1"]


def test_notifier_without_notify_socket_sends_nothing_and_does_not_fail(
        listener, monkeypatch, caplog):
    # Even with the real environment pointing at a socket, an env without NOTIFY_SOCKET
    # means "not under systemd".
    monkeypatch.setenv("NOTIFY_SOCKET", listener.notify_socket)
    caplog.set_level(logging.DEBUG, logger=notify.__name__)
    env = {"WATCHDOG_USEC": "400000", "WATCHDOG_PID": str(PID)}
    notifier = Notifier.from_environ(env, PID)

    notifier.ready("x")
    notifier.status("y")
    notifier.heartbeat()
    notifier.stopping("z")

    assert not notifier.enabled
    assert notifier.watchdog_s is None and notifier.tick_s == notify.DEFAULT_TICK_S
    assert listener.recv(0) is None
    assert caplog.records == []


@pytest.mark.parametrize("value", ["", "relative/path", "vsock:2:1234", "@"])
def test_notifier_with_unusable_notify_socket_is_disabled(value):
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": value}, PID)

    notifier.ready()

    assert not notifier.enabled


def test_notifier_send_to_vanished_socket_does_not_raise_and_logs_once(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger=notify.__name__)
    sink = NotifyListener.bind_path(tmp_path)
    env = {"NOTIFY_SOCKET": sink.notify_socket, "WATCHDOG_USEC": "400000"}
    clock = ManualClock()
    notifier = Notifier.from_environ(env, PID, monotonic=clock)
    notifier.ready()
    sink.wait_for(lambda m: True, TIMEOUT)
    sink.close()

    notifier.status("after the socket vanished")
    notifier.heartbeat()
    clock.now += 1
    notifier.heartbeat()
    notifier.stopping()

    records = [r for r in caplog.records if r.name == notify.__name__]
    assert len(records) == 1
    assert records[0].levelno == logging.DEBUG
    assert "failed" in records[0].getMessage()


def test_notifier_send_to_full_queue_gives_up_after_send_timeout(tmp_path, caplog):
    # Nobody reads: once the receive queue is full (net.unix.max_dgram_qlen datagrams),
    # a blocking send would hang the loop. The send timeout bounds it.
    caplog.set_level(logging.DEBUG, logger=notify.__name__)
    with NotifyListener.bind_path(tmp_path) as sink:
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": sink.notify_socket}, PID,
                                         send_timeout_s=0.05)
        started = time.monotonic()
        for number in range(1100):  # max_dgram_qlen is 512 at most on common kernels
            notifier.status(f"status {number}")
            if caplog.records:
                break
        took = time.monotonic() - started

        assert [r.levelno for r in caplog.records] == [logging.DEBUG]
        assert took < 1.0
        assert sink.drain()  # what fit in the queue did arrive


def test_notifier_reaches_socket_recreated_after_it_was_built(tmp_path):
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
    with NotifyListener.bind_path(tmp_path):
        notifier = Notifier.from_environ(env, PID)
    with NotifyListener.bind_path(tmp_path) as sink:
        notifier.status("hello again")

        assert sink.wait_for(lambda m: True, TIMEOUT).raw == b"STATUS=hello again"


def test_notifier_reaches_socket_bound_after_it_was_built(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger=notify.__name__)
    env = {"NOTIFY_SOCKET": str(tmp_path / "late.sock")}
    notifier = Notifier.from_environ(env, PID)  # nothing listens yet: logged, no error
    with NotifyListener.bind_path(tmp_path, "late.sock") as sink:
        notifier.ready()

        assert sink.wait_for(lambda m: True, TIMEOUT).raw == b"READY=1"
    assert len(caplog.records) == 1


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, None),
        ({"WATCHDOG_USEC": "10000000"}, 10.0),
        ({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": str(PID)}, 0.4),
        ({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": str(PID + 1)}, None),
        ({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": ""}, None),
        ({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "abc"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "1e6"}, None),
        ({"WATCHDOG_USEC": ""}, None),
        ({"WATCHDOG_USEC": "١٢٣"}, None),  # non-ASCII digits: not what systemd writes
        ({"WATCHDOG_PID": str(PID)}, None),
    ],
)
def test_watchdog_interval_follows_sd_watchdog_enabled(env, expected):
    assert watchdog_interval(env, PID) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("users=3 stopped=1", "users=3 stopped=1"),
        ("Zoë", "Zo\\xeb"),
        ("a\tb\n\nc", "a b c"),
        ("bell\x07", "bell"),
        ("", ""),
    ],
)
def test_sanitize_status_is_ascii_without_controls(text, expected):
    assert sanitize_status(text) == expected


def test_sanitize_status_respects_limit():
    assert sanitize_status("x" * 10, limit=5) == "xx..."
    assert sanitize_status("x" * 5, limit=5) == "xxxxx"
