"""The culler on a real hub with internal SSL (`c.JupyterHub.internal_ssl = True`, 6.1).

Such a hub serves its API over TLS only to clients that present a certificate signed by one
of its own authorities. As a managed service the culler gets JUPYTERHUB_SSL_KEYFILE,
_CERTFILE and _CLIENT_CA from the hub; standalone it reads the hub's certificate folder
(--internal-certs-location). The managed culler's first pass runs at the hub's start: the
test ends that process and the hub starts it again (as in test_hub_versions.py).
"""

import os
import signal
import ssl

import pytest
import requests

from tests.realhub.fixtures import require_realhub, running_hub
from tests.support.realhub import CULLER_SCOPES, RealHub, module_command, unique_names

pytestmark = pytest.mark.realhub

HOUR = 3600
MANAGED = "ssl-culler"


@pytest.fixture(scope="module")
def ssl_hub(tmp_path_factory):
    require_realhub()
    # no internal-ssl/ folder in the service's working directory: the certificates can only
    # come from the JUPYTERHUB_SSL_* variables the hub sets
    workdir = tmp_path_factory.mktemp("ssl-culler-cwd")
    services = [
        {"name": "culler", "scopes": CULLER_SCOPES},
        {"name": MANAGED, "scopes": CULLER_SCOPES, "cwd": str(workdir),
         "command": module_command() + ["--timeout=%d" % HOUR, "--cull-every=600",
                                        "--ssl-enabled"]},
    ]
    hub = RealHub(tmp_path_factory.mktemp("ssl-hub"), services, internal_ssl=True,
                  slow_stop_timeout=1, slow_spawn_timeout=1, service_poll_interval=1)
    with running_hub(hub, managed_passes=1):
        yield hub


def idle_and_active(hub, prefix):
    idle, active = unique_names(prefix, 2)
    hub.create_users([idle, active])
    hub.start_server(idle, "lab")
    hub.start_server(active)
    hub.backdate(idle, "lab", last_activity=2 * HOUR, started=2 * HOUR)
    return idle, active


def test_internal_ssl_hub_api_needs_tls_and_a_client_certificate(ssl_hub):
    assert ssl_hub.api_url.startswith("https://127.0.0.1:")
    ca = str(ssl_hub.internal_certs / "hub-ca" / "hub-ca.crt")
    session = requests.Session()
    session.trust_env = False
    with pytest.raises(requests.exceptions.SSLError):
        session.get(ssl_hub.api_url + "/", timeout=10)  # the hub's CA is not a public one
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError,
                        ssl.SSLError)):
        session.get(ssl_hub.api_url + "/", verify=ca, timeout=10)  # no client certificate
    assert ssl_hub.admin_api("GET", "/").status_code == 200  # the harness presents one


def test_internal_ssl_managed_culler_uses_the_hubs_ssl_variables(ssl_hub):
    idle, active = idle_and_active(ssl_hub, "ssl-managed")
    (first,) = ssl_hub.service_pids(MANAGED)
    with open("/proc/%d/environ" % first, "rb") as f:
        environ = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
    for name in (b"JUPYTERHUB_SSL_KEYFILE", b"JUPYTERHUB_SSL_CERTFILE",
                 b"JUPYTERHUB_SSL_CLIENT_CA"):
        assert os.path.isfile(environ[name].decode()), name
    assert environ[b"JUPYTERHUB_API_URL"].startswith(b"https://")
    mark = ssl_hub.log_size()
    os.kill(first, signal.SIGTERM)
    log = ssl_hub.wait_for_log("pass-done", since=mark, timeout=30)
    assert "url=" + ssl_hub.api_url in log
    assert "stop user=%s server=lab reason=idle" % idle in log, log
    assert not ssl_hub.server_running(idle, "lab") and ssl_hub.server_running(active)


def test_internal_ssl_standalone_with_the_certificate_folder(ssl_hub):
    idle, active = idle_and_active(ssl_hub, "ssl-standalone")
    without = ssl_hub.run_culler("culler", "--once", "--timeout=%d" % HOUR,
                                 command=module_command())
    assert without.returncode == 75 and ssl_hub.server_running(idle, "lab"), without.stderr
    result = ssl_hub.run_culler(
        "culler", "--once", "--timeout=%d" % HOUR, "--ssl-enabled",
        "--internal-certs-location=%s" % ssl_hub.internal_certs, command=module_command())
    assert result.returncode == 0, result.stderr
    assert "stop user=%s server=lab reason=idle" % idle in result.stderr
    assert not ssl_hub.server_running(idle, "lab") and ssl_hub.server_running(active)
