"""A hostile user's server, through a real JupyterHub 6.1 and configurable-http-proxy.

mallory's server (the in-hub responder, scripted through ``/hub/api/_realhub/answer``) answers
the culler's kernel checks with what a user can make any server send: cookies large enough
that a client keeping them would have every later request refused by the proxy (431), and an
answer far over the culler's 1 MiB cap. Neither may reach another user's server, nor cost the
culler more than the cap. The culler asks servers through the proxy's public URL
(``--server-url-base``) and, as in the README's quick start, the hub's API through it too.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone

import pytest

from tests.realhub.fixtures import require_realhub, running_hub
from tests.support.realhub import CULLER_SCOPES, RealHub, module_command, unique_names

pytestmark = pytest.mark.realhub

HOUR = 3600
COOKIE_BYTES = 15000  # two of them: 30 KB, past node's 16 KiB limit on a request's headers
LARGE_BYTES = 64 * 2 ** 20  # 64 MiB, streamed without a Content-Length
RSS_MARGIN_KB = 24 * 1024  # far below the 64 MiB a whole read of that answer would hold

# Runs the culler as a child and prints its peak resident set (ru_maxrss, KiB) on stderr.
MEASURED = ("import resource, subprocess, sys\n"
            "code = subprocess.call(sys.argv[1:])\n"
            "sys.stderr.write('culler-maxrss-kb=%d\\n' % "
            "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
            "sys.exit(code)\n")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require_realhub()
    real = RealHub(tmp_path_factory.mktemp("hostile"),
                   [{"name": "culler", "scopes": CULLER_SCOPES + ["tokens"]}],
                   slow_stop_timeout=1, slow_spawn_timeout=1)
    with running_hub(real):
        yield real


def iso(seconds_ago: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)).isoformat()


def script(hub, path, **answer):
    hub.admin_api("POST", "/_realhub/answer", check=True, json=dict(answer, path=path))


def status(seconds_ago, kernels=1):
    return {"started": iso(2 * HOUR), "last_activity": iso(seconds_ago),
            "connections": 0, "kernels": kernels}


def kernel(state):
    return [{"id": "k1", "name": "python3", "last_activity": iso(2 * HOUR),
             "execution_state": state, "connections": 0}]


def idle_servers(hub, users):
    """Start each user's default server, idle for 2 h at the hub; returns their URLs."""
    hub.create_users(list(users))
    urls = {}
    for user in users:
        hub.start_server(user)
        hub.backdate(user, "", last_activity=2 * HOUR, started=2 * HOUR)
        urls[user] = hub.server_model(user)["url"]
    return urls


def cull(hub, *args, command=None):
    """One pass with --check-kernels, servers and the hub's API both through the proxy."""
    result = hub.run_culler(
        "culler", "--url=%s/hub/api" % hub.public_url, "--timeout=%d" % HOUR, "--once",
        "--check-kernels", "--server-url-base=" + hub.public_url, "--concurrency=1",
        "--request-timeout=15", *args, command=command or module_command(), timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def peak(stderr):
    """The culler's peak resident set in KiB, as MEASURED printed it."""
    (line,) = [line for line in stderr.splitlines() if line.startswith("culler-maxrss-kb=")]
    return int(line.split("=")[1])


def recorded(hub, path):
    return [entry for entry in hub.admin_api("GET", "/_realhub/recorded", check=True).json()
            if entry["path"] == path]


def test_realhub_cookies_set_by_one_server_reach_no_one(hub):
    """mallory's api/status and api/kernels each set a 15 KB cookie for the whole site; the
    culler then asks victim's server, and the hub's API (stops, tokens), all through the same
    proxy: victim's questions carry no Cookie (the recording shows it), nothing answers 431,
    and victim's busy kernel keeps her server. Keeping the cookies gave 431 for victim's
    question, and her server was stopped."""
    mallory, victim = unique_names("cookie", 2)  # mallory is listed, so asked, first
    urls = idle_servers(hub, (mallory, victim))
    for name, endpoint, body in (("a", "status", status(2 * HOUR)),
                                 ("b", "kernels", kernel("idle"))):
        script(hub, urls[mallory] + "api/" + endpoint, body=body,
               headers=[["Set-Cookie", "%s=%s; Path=/" % (name, "x" * COOKIE_BYTES)]])
    script(hub, urls[victim] + "api/status", body=status(2 * HOUR))
    script(hub, urls[victim] + "api/kernels", body=kernel("busy"))

    result = cull(hub)
    assert result.returncode == 0, result.stderr
    assert "stop user=%s server=- reason=idle" % mallory in result.stderr
    assert "keep user=%s server=- reason=kernel-busy" % victim in result.stderr
    assert hub.server_running(victim) and not hub.server_running(mallory)
    assert "431" not in result.stderr and "kernel-check-failed" not in result.stderr
    asked = {(user, endpoint): recorded(hub, urls[user] + "api/" + endpoint)
             for user in (mallory, victim) for endpoint in ("status", "kernels")}
    assert all(len(entries) == 1 for entries in asked.values()), asked
    assert not any(entries[0]["cookie"] for entries in asked.values())
    every = hub.admin_api("GET", "/_realhub/recorded", check=True).json()
    order = [entry["path"] for entry in every if entry["path"].endswith(("api/status",
                                                                         "api/kernels"))]
    assert order.index(urls[victim] + "api/status") > order.index(urls[mallory] + "api/kernels")


def test_realhub_a_huge_answer_is_cut_at_the_cap(hub):
    """mallory's api/status streams 64 MiB: the culler stops reading at 1 MiB (its peak RSS
    stays within a few MiB of a pass without that answer), judges her server by the hub's data
    alone, and victim's own recent activity keeps hers."""
    baseline_user, mallory, victim = unique_names("large", 3)
    urls = idle_servers(hub, (baseline_user,))
    script(hub, urls[baseline_user] + "api/status", body=status(60, kernels=0))
    measured = [sys.executable, "-c", MEASURED] + module_command()
    baseline = cull(hub, command=measured)
    assert baseline.returncode == 0, baseline.stderr
    assert "keep user=%s server=- reason=server-active" % baseline_user in baseline.stderr

    urls = idle_servers(hub, (mallory, victim))
    script(hub, urls[mallory] + "api/status", stream_bytes=LARGE_BYTES)
    script(hub, urls[victim] + "api/status", body=status(60, kernels=0))
    result = cull(hub, command=measured)
    assert result.returncode == 0, result.stderr
    assert peak(result.stderr) < peak(baseline.stderr) + RSS_MARGIN_KB
    failed = [line for line in result.stderr.splitlines() if "kernel-check-failed" in line]
    assert len(failed) == 1 and "user=%s " % mallory in failed[0], result.stderr
    assert "reason=not-jupyter-server" in failed[0] and "too large" in failed[0]
    assert "stop user=%s server=- reason=idle" % mallory in result.stderr
    assert "keep user=%s server=- reason=server-active" % victim in result.stderr
    assert not hub.server_running(mallory) and hub.server_running(victim)

