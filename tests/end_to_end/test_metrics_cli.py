"""Metrics from a running daemon: scraped over HTTP, and as a textfile never half-written."""

import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.end_to_end.conftest import culler_env
from tests.notify_listener import NotifyListener
from tests.support.fakehub import active_user, idle_user

pytest.importorskip("prometheus_client")


def start_daemon(fake_hub, *args):
    return subprocess.Popen(
        [sys.executable, "-m", "idle_culler_daemon", "--url=" + fake_hub.api_url,
         "--timeout=3600", "--cull-every=1", *args],
        env=culler_env(fake_hub.token), stderr=subprocess.PIPE, text=True)


def wait_for_passes(process, count, timeout=20):
    """Read stderr until ``count`` pass-done lines were seen; return the lines."""
    lines, seen = [], 0
    deadline = time.monotonic() + timeout
    while seen < count and time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        seen += "pass-done" in line
    assert seen == count, "".join(lines)
    return lines


def stop(process):
    process.terminate()
    try:
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            yield line


def test_metrics_endpoint_counts_the_stopped_servers(fake_hub, unused_port):
    fake_hub.add(*[idle_user("idle%d" % i, 7200) for i in range(4)],
                 idle_user("lab", 7200, server_name="gpu"), active_user("busy"))
    process = start_daemon(fake_hub, "--metrics-port=%d" % unused_port)
    try:
        wait_for_passes(process, 2)
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % unused_port,
                                    timeout=5) as answer:
            text = answer.read().decode()
    finally:
        stop(process)
    stopped = {line.split(" ")[0]: float(line.split(" ")[1])
               for line in metric(text, "jupyterhub_idle_culler_servers_stopped_total")}
    assert sum(stopped.values()) == len(fake_hub.stopped_servers()) == 5
    named = ('jupyterhub_idle_culler_servers_stopped_total'
             '{kind="named",reason="idle",rule="default"}')
    assert stopped[named] == 1
    assert 'jupyterhub_idle_culler_passes_total{result="ok"} 2.0' in text


def test_metrics_textfile_is_never_seen_half_written(fake_hub, tmp_path):
    fake_hub.add(idle_user("ann", 7200), active_user("bob"))
    path = tmp_path / "culler.prom"
    process = start_daemon(fake_hub, "--metrics-file=%s" % path)
    reads, bad = [], []
    done = threading.Event()

    def reader():
        while not done.is_set():
            try:
                text = path.read_text()
            except FileNotFoundError:
                continue
            reads.append(1)
            if not text.endswith("\n") or "jupyterhub_idle_culler_build_info" not in text:
                bad.append(text)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        wait_for_passes(process, 3)
    finally:
        done.set()
        thread.join()
        stop(process)
    assert reads and not bad
    assert 'jupyterhub_idle_culler_passes_total{result="ok"} 3.0' in path.read_text()


def test_metrics_file_without_prometheus_client_exit_78_with_the_install_command(
        run_culler, fake_hub, tmp_path):
    (tmp_path / "prometheus_client.py").write_text("raise ImportError('not installed')\n")
    env = culler_env(fake_hub.token, PYTHONPATH=str(tmp_path))
    result = run_culler("--url=" + fake_hub.api_url, "--once",
                        "--metrics-file=%s" % (tmp_path / "c.prom"), env=env)
    assert result.returncode == 78
    assert "jupyterhub-idle-culler-daemon[metrics]" in result.stderr
    assert fake_hub.records() == []


def get(url):
    """(status, body) of a GET, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_healthz_and_metrics_port_without_prometheus_client(fake_hub, tmp_path, unused_port):
    (tmp_path / "prometheus_client.py").write_text("raise ImportError('not installed')\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "idle_culler_daemon", "--url=" + fake_hub.api_url,
         "--cull-every=1", "--metrics-port=%d" % unused_port],
        env=culler_env(fake_hub.token, PYTHONPATH=str(tmp_path)), stderr=subprocess.PIPE,
        text=True)
    try:
        lines = wait_for_passes(process, 1)
        health = get("http://127.0.0.1:%d/healthz" % unused_port)
        metrics = get("http://127.0.0.1:%d/metrics" % unused_port)
        other = get("http://127.0.0.1:%d/" % unused_port)
    finally:
        stop(process)
    assert health[0] == 200 and health[1].startswith("ok: progress ")
    assert metrics[0] == 503 and "jupyterhub-idle-culler-daemon[metrics]" in metrics[1]
    assert other[0] == 404
    assert any("event=metrics-unavailable" in line for line in lines)


def test_healthz_turns_503_when_the_loop_stalls_as_the_watchdog_pings_stop(fake_hub, tmp_path,
                                                                          unused_port):
    fake_hub.add(active_user("bob"))
    fake_hub.faults.add("GET /users", "hang", count=None, skip=1, delay=20)
    url = "http://127.0.0.1:%d/healthz" % unused_port
    with NotifyListener.bind_path(tmp_path) as listener:
        env = culler_env(fake_hub.token, NOTIFY_SOCKET=listener.notify_socket,
                         WATCHDOG_USEC="1000000")
        process = subprocess.Popen(
            ["sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh", sys.executable, "-m",
             "idle_culler_daemon", "--url=" + fake_hub.api_url, "--cull-every=2",
             "--request-timeout=5", "--metrics-port=%d" % unused_port],
            env=env, stderr=subprocess.DEVNULL)
        try:
            listener.wait_for(lambda m: (m.get("STATUS") or "").startswith("users 1"),
                              timeout=10)
            between = get(url)  # sleeping between passes: progress
            fake_hub.wait_until(lambda: len(fake_hub.records(route="list_users")) >= 2,
                                timeout=5)
            hung_at = time.monotonic()
            while get(url)[0] == 200 and time.monotonic() - hung_at < 5:
                listener.collect(0.1)
            stalled, stalled_after = get(url), time.monotonic() - hung_at
            listener.drain()
            # A ping queued just before the listing request may be read just after it.
            pings = [m for m in listener.messages
                     if m.has("WATCHDOG", "1") and m.received_at > hung_at + 0.1]
        finally:
            stop(process)
    assert between[0] == 200 and between[1].startswith("ok: progress")
    assert stalled[0] == 503 and stalled[1].startswith("stalled: no progress for ")
    assert "(limit 1s)" in stalled[1]  # the watchdog interval
    assert stalled_after < 2.5  # about one watchdog interval after the last progress
    assert pings == []  # and no watchdog ping since: the same condition


def test_once_never_opens_the_metrics_port_and_writes_the_textfile(run_culler, fake_hub,
                                                                    tmp_path):
    # The oneshot unit shares culler.env with the daemon: with a metrics port set there it
    # exited 78 ("Address already in use") while the daemon ran. A pass writes a textfile.
    fake_hub.add(active_user("bob"))
    path = tmp_path / "culler.prom"
    with socket.socket() as daemon_port:  # the running daemon's endpoint
        daemon_port.bind(("127.0.0.1", 0))
        daemon_port.listen(1)
        port = daemon_port.getsockname()[1]
        result = run_culler("--url=" + fake_hub.api_url, "--once", "--cull-every=300",
                            "--metrics-port=%d" % port, "--metrics-file=%s" % path,
                            token=fake_hub.token)
    assert result.returncode == 0, result.stderr
    ignored = [line for line in result.stderr.splitlines() if "metrics-port-ignored" in line]
    assert len(ignored) == 1 and "level=INFO" in ignored[0]
    text = path.read_text()
    # The period the timer gives (passed by the oneshot unit), not half the timeout.
    assert "jupyterhub_idle_culler_interval_seconds 300.0" in text
    assert 'jupyterhub_idle_culler_passes_total{result="ok"} 1.0' in text
    # node_exporter has process_* series of its own: a textfile must not repeat them.
    assert "\nprocess_" not in text and "python_info" not in text


def test_metrics_endpoint_exports_the_process_series(fake_hub, unused_port):
    process = start_daemon(fake_hub, "--metrics-port=%d" % unused_port)
    try:
        wait_for_passes(process, 1)
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % unused_port,
                                    timeout=5) as answer:
            text = answer.read().decode()
    finally:
        stop(process)
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                 "process_open_fds", "process_start_time_seconds", "python_info"):
        assert any(line.startswith(name) for line in text.splitlines()), name


def test_idle_connections_to_the_endpoint_do_not_starve_the_culler(fake_hub, unused_port):
    # Seen: 300 idle connections under a limit of 256 descriptors left 254 threads and every
    # request to the hub failing with EMFILE. Now at most 16 are served, the rest closed.
    import resource

    def limit_descriptors():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    process = subprocess.Popen(
        [sys.executable, "-m", "idle_culler_daemon", "--url=" + fake_hub.api_url,
         "--timeout=3600", "--cull-every=1", "--metrics-port=%d" % unused_port],
        env=culler_env(fake_hub.token), stderr=subprocess.PIPE, text=True,
        preexec_fn=limit_descriptors)
    idle = []
    try:
        wait_for_passes(process, 1)
        for _ in range(300):
            idle.append(socket.create_connection(("127.0.0.1", unused_port), timeout=5))
        fake_hub.add(idle_user("late", 7200))
        assert fake_hub.wait_until(lambda: fake_hub.stopped_servers() == [("late", "")],
                                   timeout=15)
    finally:
        for client in idle:
            client.close()
        stop(process)
    assert "Too many open files" not in process.stderr.read()
