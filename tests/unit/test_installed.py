"""installed.py: which distribution's files run, and the warning when the reference's
distribution shares the environment (read from dist-info folders made here)."""

import json
from importlib import metadata

import pytest

from idle_culler_daemon.installed import provider, reference_warning


def dist_info(site, name, version, files=(), direct_url=None, record=True):
    folder = site / ("%s-%s.dist-info" % (name.replace("-", "_"), version))
    folder.mkdir(parents=True)
    (folder / "METADATA").write_text("Metadata-Version: 2.1\nName: %s\nVersion: %s\n"
                                     % (name, version))
    if record:
        (folder / "RECORD").write_text("".join("%s,,\n" % f for f in files))
    if direct_url is not None:
        (folder / "direct_url.json").write_text(json.dumps(direct_url))
    return metadata.PathDistribution(folder)


def test_installed_provider_is_the_distribution_whose_record_lists_the_file(tmp_path):
    site = tmp_path / "site"
    (site / "idle_culler_daemon").mkdir(parents=True)
    running = site / "idle_culler_daemon" / "cli.py"
    running.write_text("")
    ours = dist_info(site, "jupyterhub-idle-culler-daemon", "1.0",
                     files=["idle_culler_daemon/cli.py"])
    reference = dist_info(site, "jupyterhub-idle-culler", "2.0.0",
                          files=["jupyterhub_idle_culler/__init__.py"])
    assert provider(str(running), [reference, ours]) is ours
    assert provider(str(running), [reference]) is None


def test_installed_no_record_no_provider(tmp_path):
    # a source tree's .egg-info lists files too, but is not an installation
    site = tmp_path / "site"
    (site / "idle_culler_daemon").mkdir(parents=True)
    (site / "idle_culler_daemon" / "cli.py").write_text("")
    tree = dist_info(site, "jupyterhub-idle-culler-daemon", "1.0", record=False)
    assert provider(str(site / "idle_culler_daemon" / "cli.py"), [tree]) is None


@pytest.mark.behaviour("names")
def test_installed_warning_names_the_reference_and_the_safe_repair(tmp_path):
    site = tmp_path / "site"
    wheel = "/srv/wheels/jupyterhub_idle_culler_daemon-1.0-py3-none-any.whl"
    ours = dist_info(site, "jupyterhub-idle-culler-daemon", "1.0",
                     direct_url={"url": "file://" + wheel, "archive_info": {}})
    reference = dist_info(site, "jupyterhub_idle_culler", "2.0.0")
    warning = reference_warning([ours, reference], python="/venv/bin/python")
    assert "jupyterhub-idle-culler 2.0.0 is also installed" in warning
    assert "'pip uninstall jupyterhub-idle-culler' would delete them" in warning
    assert warning.endswith(
        "/venv/bin/python -m pip uninstall -y jupyterhub-idle-culler && /venv/bin/python -m "
        "pip install --force-reinstall --no-deps " + wheel)
    assert reference_warning([ours], python="/venv/bin/python") is None


def test_installed_warning_without_a_recorded_source_names_the_version(tmp_path):
    site = tmp_path / "site"
    ours = dist_info(site, "jupyterhub-idle-culler-daemon", "1.0")
    reference = dist_info(site, "jupyterhub-idle-culler", "2.0.0")
    warning = reference_warning([ours, reference], python="python3")
    assert warning.endswith("--no-deps jupyterhub-idle-culler-daemon==1.0")
