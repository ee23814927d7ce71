"""The systemd notifier against a real AF_UNIX datagram socket (path and abstract name).

sdnotify reads ``NOTIFY_SOCKET`` from the process environment, so a test that needs a socket
sets it with monkeypatch (through the ``connect`` fixture) and passes the same value in the
env mapping, as cli.py does; the watchdog variables come from the mapping only. The listener
exists before the notifier: a connected datagram socket does not follow a re-created
listener. Clocks are injected, so nothing here sleeps. To prove that nothing else was sent, a
test sends a last STATUS= marker and reads up to it: datagrams on one socket arrive in order.
"""

import logging
import os
import random
import socket
import threading

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


@pytest.fixture
def connect(listener, monkeypatch):
    """Build a notifier for ``listener`` from an env mapping (plus ``extra`` variables)."""
    def build(clock=None, **extra):
        monkeypatch.setenv("NOTIFY_SOCKET", listener.notify_socket)
        env = {"NOTIFY_SOCKET": listener.notify_socket, **extra}
        return Notifier.from_environ(env, PID, monotonic=clock or ManualClock())
    return build


def sent_since_last_marker(listener, notifier):
    """What the notifier sent since the previous call (or the start), up to a new marker."""
    markers = [i for i, m in enumerate(listener.messages)
               if (m.get("STATUS") or "").startswith("marker-")]
    start = markers[-1] + 1 if markers else 0
    marker = f"marker-{len(markers)}"
    notifier.status(marker)
    listener.wait_for(lambda m: m.get("STATUS") == marker, TIMEOUT)
    return listener.messages[start:-1]


def test_notifier_ready_arrives_from_our_pid(connect, listener):
    notifier = connect()

    notifier.ready()

    message = listener.wait_for(lambda m: True, TIMEOUT)
    assert message.raw == b"READY=1"
    assert message.pid == PID  # what NotifyAccess=main checks
    assert notifier.enabled


def test_notifier_ready_with_status_is_one_datagram(connect, listener):
    notifier = connect()

    notifier.ready("waiting for first pass")

    message = listener.wait_for(lambda m: True, TIMEOUT)
    assert message.items == [("READY", "1"), ("STATUS", "waiting for first pass")]


def test_notifier_status_with_non_ascii_user_name_arrives_escaped(connect, listener):
    notifier = connect()

    notifier.status("stopped user=jürgen server=🚀 users=3")

    message = listener.wait_for(lambda m: m.has("STATUS"), TIMEOUT)
    assert message.raw.isascii()
    assert message.get("STATUS") == "stopped user=j\\xfcrgen server=\\U0001f680 users=3"


def test_notifier_status_caps_long_text(connect, listener):
    notifier = connect()

    notifier.status("ü" * 5000)

    status = listener.wait_for(lambda m: m.has("STATUS"), TIMEOUT).get("STATUS")
    assert len(status) == notify.STATUS_MAX_CHARS
    assert status.startswith("\\xfc") and status.endswith("...")


def test_notifier_status_control_characters_cannot_inject_lines(connect, listener):
    notifier = connect()

    notifier.status("user=evil\nREADY=1\x00\x1b[31m\r\n\x85done")

    message = listener.wait_for(lambda m: True, TIMEOUT)
    assert message.items == [("STATUS", "user=evil READY=1[31m done")]


def test_notifier_stopping_carries_status_in_same_datagram(connect, listener):
    notifier = connect()

    notifier.stopping("stopping after signal")

    message = listener.wait_for(lambda m: True, TIMEOUT)
    assert message.items == [("STOPPING", "1"), ("STATUS", "stopping after signal")]


def test_notifier_reloading_sends_monotonic_usec_in_the_same_datagram(
        connect, listener, monkeypatch):
    notifier = connect()
    notifier._monotonic_ns = lambda: 1234567891234  # CLOCK_MONOTONIC in ns

    notifier.reloading("reloading the configuration")
    notifier.ready("reloaded: timeout changed")

    reloading = listener.wait_for(lambda m: True, TIMEOUT)
    assert reloading.items == [("RELOADING", "1"), ("MONOTONIC_USEC", "1234567891"),
                               ("STATUS", "reloading the configuration")]
    ready = listener.wait_for(lambda m: m.has("READY", "1"), TIMEOUT)
    assert ready.get("STATUS") == "reloaded: timeout changed"


def test_notifier_monotonic_usec_is_on_clock_monotonic():
    import time
    notifier = Notifier(None, None)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    value = notifier._monotonic_ns() // 1000
    assert before <= value <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def test_notifier_heartbeat_pings_when_a_quarter_interval_has_passed(connect, listener):
    clock = ManualClock()
    notifier = connect(clock, WATCHDOG_USEC="10000000", WATCHDOG_PID=str(PID))
    assert (notifier.watchdog_s, notifier.tick_s) == (10.0, 2.5)

    sent_at = []
    for now in (0.0, 1.0, 2.49, 2.5, 4.99, 5.0, 7.4, 9.9, 9.9, 12.4, 20.0):
        clock.now = 1000.0 + now
        notifier.heartbeat()
        if sent_since_last_marker(listener, notifier):
            sent_at.append(now)

    assert sent_at == [0.0, 2.5, 5.0, 9.9, 12.4, 20.0]
    pings = [m for m in listener.messages if m.has("WATCHDOG")]
    assert [m.raw for m in pings] == [b"WATCHDOG=1"] * 6
    assert {m.pid for m in pings} == {PID}


@pytest.mark.parametrize("watchdog_usec", [2000000, 500000, 400000])
def test_notifier_heartbeat_every_tick_keeps_gaps_under_half_the_interval(
        connect, listener, watchdog_usec):
    # A caller that beats at irregular moments, but never more than tick_s apart: the
    # promise of tick_s. With the former rule (ping at most every half interval, loop woken
    # every quarter) the gap reached 3/4 of the interval; the rule must keep it under 1/2.
    clock = ManualClock()
    notifier = connect(clock, WATCHDOG_USEC=str(watchdog_usec))
    half = watchdog_usec / 2e6
    beats = random.Random(watchdog_usec)
    pinged_at = []
    for _ in range(2000):
        clock.now += notifier.tick_s * beats.choice([1.0, 0.999, 0.5, 0.01, beats.random()])
        notifier.heartbeat()
        # An AF_UNIX send queues the datagram before it returns: no wait needed to see it.
        if listener.recv(0) is not None:
            pinged_at.append(clock.now)
    gaps = [later - earlier for earlier, later in zip(pinged_at, pinged_at[1:])]

    assert len(pinged_at) > 100 and all(m.raw == b"WATCHDOG=1" for m in listener.messages)
    assert max(gaps) <= half + 1e-9  # what systemd asks (1e-9: float sums of the clock)
    assert min(gaps) >= notifier.tick_s - 1e-9  # at most four pings per interval


def test_notifier_heartbeat_without_watchdog_pid_still_pings(connect, listener):
    notifier = connect(WATCHDOG_USEC="400000")

    notifier.heartbeat()

    assert listener.wait_for(lambda m: True, TIMEOUT).raw == b"WATCHDOG=1"
    assert notifier.tick_s == pytest.approx(0.1)


def test_notifier_heartbeat_sends_nothing_when_watchdog_pid_is_another_pid(connect, listener):
    clock = ManualClock()
    notifier = connect(clock, WATCHDOG_USEC="400000", WATCHDOG_PID=str(PID + 1))

    for step in range(20):
        clock.now += step
        notifier.heartbeat()

    assert sent_since_last_marker(listener, notifier) == []
    assert notifier.watchdog_s is None and notifier.tick_s == notify.DEFAULT_TICK_S


def test_notifier_heartbeat_is_noop_without_watchdog(connect, listener):
    clock = ManualClock()
    notifier = connect(clock)
    for step in range(5):
        clock.now += 100 * step
        notifier.heartbeat()

    assert sent_since_last_marker(listener, notifier) == []


def test_notifier_takes_watchdog_from_given_env_not_process_environment(
        connect, listener, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    monkeypatch.setenv("WATCHDOG_PID", str(PID))
    without = connect()
    with_it = connect(WATCHDOG_USEC="10000000")

    without.heartbeat()

    assert sent_since_last_marker(listener, without) == []
    assert (without.watchdog_s, with_it.watchdog_s) == (None, 10.0)


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


@pytest.mark.parametrize("value", ["", "relative/path", "vsock:2:1234", "@", "/nonexistent/x",
                                   None])
def test_notifier_with_unusable_notify_socket_is_disabled(value, monkeypatch, caplog):
    # None: the env mapping has NOTIFY_SOCKET but the process environment does not, where
    # sdnotify in debug mode raises TypeError.
    caplog.set_level(logging.DEBUG, logger=notify.__name__)
    if value is None:
        monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    else:
        monkeypatch.setenv("NOTIFY_SOCKET", value)
    env = {"NOTIFY_SOCKET": "/run/systemd/notify" if value is None else value,
           "WATCHDOG_USEC": "400000"}
    notifier = Notifier.from_environ(env, PID)

    notifier.ready()
    notifier.heartbeat()

    assert not notifier.enabled and notifier.watchdog_s is None
    assert [r.levelno for r in caplog.records] == ([] if value == "" else [logging.DEBUG])


def test_notifier_send_to_vanished_socket_does_not_raise_and_logs_once(
        tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG, logger=notify.__name__)
    sink = NotifyListener.bind_path(tmp_path)
    monkeypatch.setenv("NOTIFY_SOCKET", sink.notify_socket)
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


def fill_queue(listener):
    """Fill the listener's receive queue; return the sockets that did it (close them).

    Each filler is a fresh non-blocking socket: when a fresh one cannot send even one
    datagram, its own send buffer is empty, so the receiver's queue is what is full
    (net.unix.max_dgram_qlen datagrams).
    """
    address = listener.notify_socket
    address = "\0" + address[1:] if address.startswith("@") else address
    fillers = []
    for _ in range(1000):
        filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        fillers.append(filler)
        filler.setblocking(False)
        filler.connect(address)
        sent = 0
        try:
            while sent < 100000:
                filler.send(b"FILLER=1")
                sent += 1
        except BlockingIOError:
            if sent == 0:
                return fillers
    raise AssertionError("the receive queue never filled")


def test_notifier_send_to_full_queue_waits_for_room_and_loses_nothing(
        connect, listener, caplog):
    # A full queue means PID 1 is stalled: the message is sent late rather than lost.
    caplog.set_level(logging.DEBUG, logger=notify.__name__)
    notifier = connect()
    fillers = fill_queue(listener)
    try:
        sender = threading.Thread(target=notifier.stopping, args=("stopping",), daemon=True)
        sender.start()
        sender.join(0.2)  # a window to show that it waits; it ends only once we read
        waited = sender.is_alive()
        last = listener.wait_for(lambda m: m.has("STOPPING"), TIMEOUT)
        sender.join(TIMEOUT)
    finally:
        for filler in fillers:
            filler.close()

    assert waited and not sender.is_alive()
    assert last.items == [("STOPPING", "1"), ("STATUS", "stopping")]
    assert caplog.records == []


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
