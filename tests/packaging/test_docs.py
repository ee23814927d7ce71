"""The README documents every option and its environment variable."""

import pathlib

from idle_culler_daemon.options import OPTIONS

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
