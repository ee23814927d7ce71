"""The culler service the Zero-to-JupyterHub Helm chart configures, for tests on real hubs.

The chart (jupyterhub/files/hub/jupyterhub_config.py, its `cull` values) starts the culler as
a hub-managed service named "jupyterhub-idle-culler" with this command line, built from its
`cull.*` values in this order, and gives it a role with these scopes (on hubs before 2.0 it
was `admin: True`). The chart's hub listens on port 8081 of its pod; tests substitute the
port of their own hub. Defaults: cull.timeout 3600, every 600, concurrency 10, users false,
adminUsers true, removeNamedServers false, maxAge 0 (0 or empty values add no flag).
"""

from __future__ import annotations

SERVICE_NAME = "jupyterhub-idle-culler"


def cull_command(
    hub_port: int = 8081,
    *,
    base_url: str = "/",
    timeout: int = 3600,
    every: int = 600,
    concurrency: int = 10,
    users: bool = False,
    admin_users: bool = True,
    remove_named_servers: bool = False,
    max_age: int = 0,
) -> list[str]:
    """The argv the chart generates for these `cull.*` values."""
    command = ["python3", "-m", "jupyterhub_idle_culler"]
    command.append(f"--url=http://localhost:{hub_port}{base_url.rstrip('/')}/hub/api")
    if timeout:
        command.append(f"--timeout={timeout}")
    if every:
        command.append(f"--cull-every={every}")
    if concurrency:
        command.append(f"--concurrency={concurrency}")
    if users:
        command.append("--cull-users")
    if not admin_users:
        command.append("--cull-admin-users=false")
    if remove_named_servers:
        command.append("--remove-named-servers")
    if max_age:
        command.append(f"--max-age={max_age}")
    return command


def role_scopes(users: bool = False) -> list[str]:
    """The scopes of the chart's "jupyterhub-idle-culler" role."""
    scopes = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
    if users:
        scopes.append("admin:users")
    return scopes
