"""The README documents every option and its environment variable."""

import pathlib

from idle_culler_daemon.config import OPTIONS

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_readme_lists_every_option_and_environment_variable():
    text = README.read_text(encoding="utf-8")
    for option in OPTIONS:
        assert "`%s`" % option.flag in text, option.flag
        if option.env_name:
            assert option.env_name in text, option.env_name


def test_readme_shows_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text


def test_readme_install_tells_pip_users_to_remove_the_reference_first():
    # README.md is the wheel's long description: this is what pip and PyPI users read.
    text = README.read_text(encoding="utf-8")
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings[0] == "## Install"
    install = text.split("\n## Install\n", 1)[1].split("\n## ", 1)[0]
    uninstall = install.index("\npip uninstall jupyterhub-idle-culler\n")
    assert uninstall < install.index("\npip install jupyterhub-idle-culler-daemon")
    assert "python3-jupyterhub-idle-culler" in install  # what the RPM and the deb replace
