"""Notifications from the command line: --notify-url, --warn-before, the header file, the URL
kept out of every line, the plan of a dry run (docs/behaviour.md#webhook-notifications)."""

import json

from tests.support.fakehub import idle_user
from tests.support.receiver import Receiver

MINUTE = 60


def test_cli_notifies_warnings_and_stops_and_never_shows_the_url(run_culler, fake_hub,
                                                                tmp_path):
    fake_hub.add(idle_user("ann", 50 * MINUTE), idle_user("bob", 2 * 3600))
    header = tmp_path / "notify-header"
    header.write_text("Authorization: Bearer hdr-secret-0123\n")
    with Receiver() as receiver:
        result = run_culler("--url=" + fake_hub.api_url, "--timeout=1h", "--warn-before=15m",
                            "--notify-url=" + receiver.url, "--notify-header-file=%s" % header,
                            "--once", "--log-level=DEBUG", token=fake_hub.token)
        bodies = receiver.bodies()  # --once drains the queue before it exits
        headers = [item.headers for item in receiver.received()]
    assert result.returncode == 0, result.stderr
    assert [(body["event"], body["user"]) for body in bodies] == [
        ("server-stop-soon", "ann"), ("server-stopped", "bob")]
    assert all(h["Authorization"] == "Bearer hdr-secret-0123" for h in headers)
    assert "event=server-stop-soon user=ann server=- reason=idle" in result.stderr
    assert "event=server-stopped user=bob server=- reason=idle" in result.stderr
    assert "secretkey" not in result.stderr and "/hook/T0/B0" not in result.stderr
    assert "hdr-secret-0123" not in result.stderr and fake_hub.token not in result.stderr


def test_cli_dry_run_sends_nothing_and_the_plan_lists_the_warnings(run_culler, fake_hub):
    fake_hub.add(idle_user("ann", 50 * MINUTE), idle_user("bob", 2 * 3600))
    with Receiver() as receiver:
        table = run_culler("--url=" + fake_hub.api_url, "--timeout=1h", "--warn-before=15m",
                           "--notify-url=" + receiver.url, "--once", "--dry-run",
                           token=fake_hub.token)
        plan = run_culler("--url=" + fake_hub.api_url, "--timeout=1h", "--warn-before=15m",
                          "--notify-url=" + receiver.url, "--once", "--dry-run",
                          "--output=json", token=fake_hub.token)
        assert receiver.received() == []
    assert table.returncode == 0 and plan.returncode == 0, table.stderr + plan.stderr
    assert "server-stop-soon  ann   -       idle" in table.stdout
    assert "1 warning(s) would be sent; none was sent." in table.stdout
    assert "would-warn notice=server-stop-soon user=ann" in table.stderr
    objects = [json.loads(line) for line in plan.stdout.splitlines()]
    (warning,) = [item for item in objects if item["type"] == "warning"]
    assert (warning["event"], warning["user"], warning["server"]) == ("server-stop-soon",
                                                                      "ann", "")
    assert fake_hub.stopped_servers() == []


def test_cli_show_config_redacts_the_notify_url(run_culler):
    result = run_culler("--show-config", "--notify-url=https://hooks.example/T/B/keykeykey",
                        "--warn-before=15m")
    assert result.returncode == 0, result.stderr
    assert "notify_url = https://hooks.example/<redacted> ; command line" in result.stdout
    assert "keykeykey" not in result.stdout and "warn_before = 900" in result.stdout
