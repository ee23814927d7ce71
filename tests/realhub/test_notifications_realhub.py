"""Notifications against a real JupyterHub 6.1.1 (docs/behaviour.md#webhook-notifications).

A hub of the test's own (its servers are the only ones, so what the receiver gets is all
ours), the culler as a daemon passing every second, and receivers on 127.0.0.1: one that
records the JSON, and a Slack-style one that keeps only ``text``, as a chat webhook shows it.
The JSON a receiver got is printed (``pytest -s`` shows it).
"""

import json
import signal
import subprocess
import time

import pytest

from tests.support.realhub import culler_command
from tests.support.receiver import Receiver

pytestmark = pytest.mark.realhub

MINUTE = 60


class Daemon:
    """The culler as a long-running subprocess; stderr read line by line, bounded."""

    def __init__(self, hub, *args):
        self.process = subprocess.Popen(culler_command() + ["--url=" + hub.api_url, *args],
                                        env=hub.service_env("culler"), stdin=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        self.lines = []

    def wait_for(self, needle, count=1, timeout=60):
        deadline, seen = time.monotonic() + timeout, 0
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            seen += needle in line
            if seen >= count:
                return
        raise AssertionError("%r not seen %d times in:\n%s"
                             % (needle, count, "".join(self.lines[-30:])))

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.lines += self.process.stderr.readlines()
        self.process.stderr.close()
        return self.process.returncode


def test_realhub_warns_once_over_three_passes_then_tells_the_stops(fresh_realhub):
    hub = fresh_realhub()
    idle, fresh = ["ann", "bob"], ["cat", "dan"]
    hub.create_users(idle + fresh)
    hub.start_servers(idle + fresh)
    for user in idle:
        hub.backdate(user, "", last_activity=50 * MINUTE, started=50 * MINUTE)
    for user in fresh:
        hub.backdate(user, "", last_activity=20 * MINUTE, started=20 * MINUTE)
    options = ["--timeout=1h", "--warn-before=15m"]
    with Receiver() as receiver:
        daemon = Daemon(hub, *options, "--cull-every=1", "--notify-url=" + receiver.url)
        try:
            daemon.wait_for("event=pass-done", count=3)
        finally:
            assert daemon.stop() == 0  # drains the queue before it exits
        warnings = receiver.bodies()
    print("\nJSON the receiver got over three passes:")
    for body in warnings:
        print(json.dumps(body, sort_keys=True))
    assert sorted((body["event"], body["user"]) for body in warnings) == [
        ("server-stop-soon", "ann"), ("server-stop-soon", "bob")]
    for body in warnings:
        assert (body["server"], body["reason"], body["rule"]) == ("", "idle", "default")
        assert 50 * MINUTE <= body["idle_s"] < 52 * MINUTE and body["hub"] == hub.api_url
        assert body["text"] == ("The server of %s will be stopped at %s UTC unless it is used "
                                "before then." % (body["user"], body["at"][11:16]))
    assert all(hub.server_running(user) for user in idle + fresh)

    for user in idle:  # idle for 2 hours now: stopped at the next pass
        hub.backdate(user, "", last_activity=2 * 3600, started=2 * 3600)
    with Receiver() as slack:  # reads only "text", as a chat webhook does
        result = hub.run_culler("culler", *options, "--once", "--notify-url=" + slack.url)
        texts = [body["text"] for body in slack.bodies()]
        stopped = slack.bodies()
    assert result.returncode == 0, result.stderr
    print("What a Slack-style receiver shows:")
    print("\n".join(texts))
    print("JSON of the stops:")
    for body in stopped:
        print(json.dumps(body, sort_keys=True))
    assert sorted(texts) == ["The server of ann was stopped after 2h00m without activity.",
                             "The server of bob was stopped after 2h00m without activity."]
    assert all(body["event"] == "server-stopped" and body["result"] == "stopped"
               for body in stopped)
    assert not any(hub.server_running(user) for user in idle)
    assert all(hub.server_running(user) for user in fresh)
    assert "secretkey" not in result.stderr and "secretkey" not in "".join(daemon.lines)
