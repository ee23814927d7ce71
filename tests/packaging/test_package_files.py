"""The RPM spec and the debian/ template agree with the project (cheap drift checks).

The real builds run in CI (.ci/build-rpm.sh, .ci/build-deb.sh); these catch the usual drift
early: a version bump in one place only, or a unit file added without packaging it.
"""

import re
from pathlib import Path

from idle_culler_daemon import __version__

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "packaging" / "rpm" / "jupyterhub-idle-culler-daemon.spec"
DEBIAN = REPO / "packaging" / "debian"
UNITS = sorted(p.name for p in (REPO / "packaging" / "systemd").iterdir()
               if p.suffix in (".service", ".timer"))


def test_package_files_version_matches_the_package():
    spec = SPEC.read_text(encoding="utf-8")
    assert re.search(r"^Version:\s+%s$" % re.escape(__version__), spec, re.M)
    first = (DEBIAN / "changelog").read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("jupyterhub-idle-culler-daemon (%s-" % __version__), first


def test_package_files_ship_every_unit():
    assert len(UNITS) == 4, UNITS
    spec = SPEC.read_text(encoding="utf-8")
    install = (DEBIAN / "jupyterhub-idle-culler-daemon.install").read_text(encoding="utf-8")
    for unit in UNITS:
        assert "%%{_unitdir}/%s\n" % unit in spec, unit
        assert "packaging/systemd/%s lib/systemd/system/\n" % unit in install, unit


def test_package_files_spec_uses_the_pep625_source_name():
    spec = SPEC.read_text(encoding="utf-8")
    assert "%global pypi_name jupyterhub_idle_culler_daemon\n" in spec
    assert "%autosetup -n %{pypi_name}-%{version}\n" in spec
