"""The main loop on a manual clock: interval start to start, overruns, signals, reloads."""

import logging
import os
import signal
import threading
import time

import pytest

from idle_culler_daemon.daemon import Health, LoopClock, Signals, run_forever
from idle_culler_daemon.errors import EXIT_CONFIG, EXIT_TEMPFAIL, ConfigError, HubError
from idle_culler_daemon.stats import PassStats
from tests.fakes import RecordingNotifier


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class FakeService:
    """Each pass takes ``pass_s`` on the manual clock; a script decides what happens next."""

    def __init__(self, clock, signals, interval_s=60.0, pass_s=5.0, passes=3, results=None):
        self.clock, self.signals, self.interval_s, self.pass_s = clock, signals, interval_s, pass_s
        self.passes, self.results = passes, list(results or [])
        self.starts, self.reloads, self.preflights = [], 0, 0
        self.preflight_error = None

    def preflight(self):
        self.preflights += 1
        if self.preflight_error is not None:
            raise self.preflight_error

    def run_pass(self, heartbeat):
        self.starts.append(self.clock.now)
        self.clock.now += self.pass_s
        heartbeat()
        if len(self.starts) >= self.passes:
            self.signals.request_stop()
        if self.results:
            result = self.results.pop(0)
            if isinstance(result, Exception):
                raise result
            return result
        return PassStats(users_seen=3)

    def reload(self):
        self.reloads += 1
        self.interval_s = 30.0
        return "reloaded: cull_every changed"


def loop(service, clock, signals, notifier=None, once=False):
    notifier = notifier or RecordingNotifier(tick_s=7.0)
    try:
        code = run_forever(service, notifier, signals, once=once,
                           clock=LoopClock(monotonic=clock, wait=clock.sleep))
    finally:
        signals.close()
    return code, notifier


def test_run_forever_starts_passes_on_the_interval_start_to_start():
    clock, signals = Clock(), Signals()
    service = FakeService(clock, signals, interval_s=60, pass_s=5)
    code, notifier = loop(service, clock, signals)
    assert code == 0 and service.starts == [1000.0, 1060.0, 1120.0]
    assert notifier.messages[0] == "READY=1" and notifier.messages[-1] == "STOPPING=1"
    assert sum(m.startswith("STATUS=users 3") for m in notifier.messages) == 3


def test_run_forever_heartbeats_while_sleeping_between_passes():
    clock, signals = Clock(), Signals()
    service = FakeService(clock, signals, interval_s=60, pass_s=5, passes=2)
    _, notifier = loop(service, clock, signals, RecordingNotifier(tick_s=7.0))
    between = notifier.messages.index("STATUS=" + [m for m in notifier.messages
                                                    if m.startswith("STATUS=")][0][7:])
    pings = notifier.messages[between:].count("WATCHDOG=1")
    assert pings >= 55 // 7  # one ping per tick while waiting 55 s


def test_run_forever_overrun_warns_and_starts_the_next_pass_at_once(caplog):
    clock, signals = Clock(), Signals()
    service = FakeService(clock, signals, interval_s=10, pass_s=25, passes=2)
    with caplog.at_level(logging.WARNING):
        loop(service, clock, signals)
    assert service.starts == [1000.0, 1025.0] and "pass-overran" in caplog.text


def test_run_forever_once_exits_75_when_the_hub_is_unreachable():
    clock, signals = Clock(), Signals()
    service = FakeService(clock, signals, results=[PassStats(listing_error="GET /users: down")])
    code, notifier = loop(service, clock, signals, once=True)
    assert code == EXIT_TEMPFAIL and len(service.starts) == 1
    assert any("hub unreachable" in m for m in notifier.messages)


def test_run_forever_once_exits_0_after_a_clean_pass():
    clock, signals = Clock(), Signals()
    service = FakeService(clock, signals, passes=5)
    code, _ = loop(service, clock, signals, once=True)
    assert code == 0 and len(service.starts) == 1


def test_run_forever_daemon_survives_an_unreachable_hub():
    clock, signals = Clock(), Signals()
    down = [PassStats(listing_error="down"), PassStats(listing_error="down")]
    service = FakeService(clock, signals, passes=3, results=down)
    code, _ = loop(service, clock, signals)
    assert code == 0 and len(service.starts) == 3


def test_run_forever_config_error_from_preflight_exits_78():
    clock, signals = Clock(), Signals()
    service = FakeService(clock, signals, results=[ConfigError("lacks delete:servers")])
    code, notifier = loop(service, clock, signals)
    assert code == EXIT_CONFIG and notifier.messages[-1] == "STOPPING=1"


def test_run_forever_reload_between_passes_changes_the_interval():
    clock, signals = Clock(), Signals()
    service = FakeService(clock, signals, interval_s=60, pass_s=5, passes=3)
    signals.request_reload()
    loop(service, clock, signals)
    assert service.reloads == 1 and service.starts[1] - service.starts[0] == 30.0


def test_run_forever_stop_before_the_first_pass_sends_stopping_only():
    clock, signals = Clock(), Signals()
    signals.request_stop()
    service = FakeService(clock, signals)
    code, notifier = loop(service, clock, signals)
    assert code == 0 and service.starts == [] and service.preflights == 0
    assert notifier.messages == ["STOPPING=1"]


def test_run_forever_reload_is_announced_with_reloading_then_ready_with_what_changed():
    clock, signals = Clock(), Signals()
    service = FakeService(clock, signals, interval_s=60, pass_s=5, passes=2)
    signals.request_reload()
    _, notifier = loop(service, clock, signals)
    messages = notifier.messages
    at = messages.index("RELOADING=1")
    first_summary = next(i for i, m in enumerate(messages) if m.startswith("STATUS=users 3"))
    assert first_summary < at  # the reload waits for the pass to end, then is announced
    after = messages[at + 1:]
    second_summary = next(i for i, m in enumerate(after) if m.startswith("STATUS=users 3"))
    assert after.index("READY=1") < second_summary  # in force before the next pass
    assert messages.count("READY=1") == 2  # start-up, then the end of the reload
    assert notifier.ready_statuses[-1] == "reloaded: cull_every changed"


def test_run_forever_feeds_the_health_check_with_every_heartbeat():
    clock, signals = Clock(), Signals()
    beats = []

    class Recording(Health):
        def beat(self):
            beats.append(clock.now)
            super().beat()

    health = Recording(lambda: 10.0, monotonic=clock)
    service = FakeService(clock, signals, interval_s=60, pass_s=5, passes=2)
    run_forever(service, RecordingNotifier(tick_s=7.0), signals,
                clock=LoopClock(monotonic=clock, wait=clock.sleep), health=health)
    assert len(beats) >= 55 // 7 and health.check()[0]


def test_health_is_ok_while_beats_come_and_stalled_after_the_limit():
    clock = Clock()
    health = Health(lambda: 30.0, monotonic=clock)
    assert health.check() == (True, "ok: progress 0.0s ago (limit 30s)")
    clock.sleep(29)
    assert health.check()[0]
    clock.sleep(2)
    healthy, why = health.check()
    assert not healthy and why == "stalled: no progress for 31.0s (limit 30s)"
    health.beat()
    assert health.check()[0]


def test_run_forever_sends_ready_only_after_the_first_preflight_passed():
    clock, signals = Clock(), Signals()
    service = FakeService(clock, signals, passes=1)
    order = []
    notifier = RecordingNotifier(tick_s=7.0)
    original = service.preflight
    service.preflight = lambda: (order.append(list(notifier.messages)), original())
    code, _ = loop(service, clock, signals, notifier)
    assert code == 0 and order == [[]] and notifier.messages[0] == "READY=1"


def test_run_forever_config_error_at_start_exits_78_without_ready():
    clock, signals = Clock(), Signals()
    service = FakeService(clock, signals)
    service.preflight_error = ConfigError("the API token lacks the scope list:users")
    code, notifier = loop(service, clock, signals)
    assert code == EXIT_CONFIG and service.starts == []
    assert "READY=1" not in notifier.messages and notifier.messages[-1] == "STOPPING=1"


def test_run_forever_hub_down_at_start_is_ready_with_a_status_and_runs_the_passes():
    clock, signals = Clock(), Signals()
    service = FakeService(clock, signals, passes=2)
    service.preflight_error = HubError("GET / : connection refused")
    code, notifier = loop(service, clock, signals)
    assert code == 0 and len(service.starts) == 2  # each pass preflights again
    assert notifier.messages[0] == "READY=1"
    assert notifier.ready_statuses[0].startswith("waiting for the hub")


def test_run_forever_once_sends_no_ready_and_leaves_the_preflight_to_the_pass():
    clock, signals = Clock(), Signals()
    service = FakeService(clock, signals)
    code, notifier = loop(service, clock, signals, once=True)
    assert code == 0 and service.preflights == 0 and "READY=1" not in notifier.messages


@pytest.fixture
def signals():
    made = Signals()
    yield made
    made.close()


def test_signals_record_is_only_seen_once_collected_and_a_burst_of_reloads_is_one(signals):
    for _ in range(400):
        signals.record(Signals.RELOAD)
    assert not signals.reload.is_set()  # a handler only records
    signals.collect()
    assert signals.reload.is_set() and not signals.stop.is_set()


def test_signals_stop_is_seen_by_any_reader_of_the_stop_event(signals):
    signals.record(Signals.RELOAD)
    signals.record(Signals.STOP)
    seen = []
    reader = threading.Thread(target=lambda: seen.append(signals.stop.is_set()))
    reader.start()
    reader.join(timeout=5)
    assert seen == [True] and signals.stopping() and signals.reload.is_set()


def test_signals_wait_ends_when_the_wakeup_fd_is_written_and_drains_it(signals):
    signals.record(Signals.STOP)
    os.write(signals.wakeup_fd, b"\x0f" * 300)  # what the interpreter writes per signal
    started = time.monotonic()
    signals.wait(5.0)
    assert time.monotonic() - started < 2.0 and signals.stopping()
    started = time.monotonic()
    signals.wait(0.05)  # drained: this one waits its time
    assert time.monotonic() - started >= 0.04


def test_signals_real_handlers_record_a_burst_and_the_wait_wakes(signals):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers need the main thread")
    previous = signal.signal(signal.SIGHUP, lambda signum, frame: signals.record(
        Signals.RELOAD))
    old_fd = signal.set_wakeup_fd(signals.wakeup_fd, warn_on_full_buffer=False)
    try:
        for _ in range(200):
            os.kill(os.getpid(), signal.SIGHUP)
        signals.wait(5.0)
    finally:
        signal.set_wakeup_fd(old_fd)
        signal.signal(signal.SIGHUP, previous)
    assert signals.reload.is_set() and not signals.stopping()
