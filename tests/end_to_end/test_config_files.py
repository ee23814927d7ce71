"""Which config files the culler obeys, end to end: a file planted in a shared working
directory steers nothing (docs/behaviour.md#which-configuration-files-are-obeyed)."""

import os

import pytest

from tests.end_to_end.conftest import culler_env
from tests.support.fakehub import idle_user

NOBODY = 65534


@pytest.mark.parametrize("mode,owner", [
    (0o666, None),
    pytest.param(0o644, NOBODY, marks=pytest.mark.skipif(
        os.geteuid() != 0, reason="giving a file away needs root")),
])
def test_file_planted_in_a_shared_working_directory_is_ignored(run_culler, fake_hub, tmp_path,
                                                               mode, owner):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    secret = tmp_path / "secret"
    secret.write_text("root-only-secret-value\n")
    secret.chmod(0o600)
    overwritten = tmp_path / "root-only"
    planted = shared / "idle_culler_config.py"
    planted.write_text(
        "c.IdleCuller.url = 'http://127.0.0.1:9/hub/api'\n"
        "c.IdleCuller.server_url_base = 'http://127.0.0.1:9/'\n"
        "c.IdleCuller.api_token_file = %r\n"
        "c.IdleCuller.metrics_file = %r\n"
        "c.IdleCuller.timeout = 1\n" % (str(secret), str(overwritten)))
    planted.chmod(mode)
    if owner is not None:
        os.chown(planted, owner, -1)
    fake_hub.add(idle_user("ann", 7200))
    env = culler_env(fake_hub.token, JUPYTERHUB_API_URL=fake_hub.api_url)
    result = run_culler("--once", "--dry-run", env=env, cwd=shared)
    assert result.returncode == 0, result.stderr
    assert not overwritten.exists()
    warnings = [line for line in result.stderr.splitlines() if "config-warning" in line]
    assert len(warnings) == 1 and "idle_culler_config.py" in warnings[0]
    assert "level=WARNING" in warnings[0] and "mode %04o" % mode in warnings[0]
    assert "root-only-secret-value" not in result.stderr + result.stdout
    assert "config_file=-" in result.stderr
