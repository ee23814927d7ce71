"""docs/reference.md is what ``python -m idle_culler_daemon.reference`` makes: never stale."""

import pathlib

import pytest

from idle_culler_daemon import reference
from idle_culler_daemon.errors import EXIT_CODES
from idle_culler_daemon.events import EVENTS
from idle_culler_daemon.options import OPTIONS, RULE_KEYS

PAGE = pathlib.Path(__file__).resolve().parents[2] / "docs" / "reference.md"


@pytest.fixture(scope="module")
def made():
    pytest.importorskip("prometheus_client")  # the metrics are read from their registry
    return reference.render()


def test_reference_md_is_the_generated_page(made):
    assert PAGE.read_text(encoding="utf-8") == made, (
        "docs/reference.md is stale: run python -m idle_culler_daemon.reference "
        "-o docs/reference.md")


def test_reference_names_every_option_key_exit_code_metric_and_event(made):
    for option in OPTIONS:
        assert "| `%s` |" % option.flag in made, option.flag
        if option.env_name:
            assert "`%s`" % option.env_name in made
    for key in RULE_KEYS:
        assert "| `%s` |" % key in made, key
    for code in EXIT_CODES:
        assert "| `%d` |" % code in made, code
    for name in EVENTS:
        assert "| `%s` |" % name in made, name
    assert "| `jupyterhub_idle_culler_passes_total` | counter | `result` |" in made


def test_a_changed_declaration_changes_the_page(monkeypatch, made):
    monkeypatch.setitem(EVENTS, "made-up-event", EVENTS["start"]._replace(name="made-up-event"))
    assert "`made-up-event`" in reference.render() and "`made-up-event`" not in made


def test_the_generator_writes_the_page(tmp_path, made):
    target = tmp_path / "reference.md"
    assert reference.main(["-o", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == made
