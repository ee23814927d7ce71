"""The RPM spec and the debian/ template agree with the project (cheap drift checks).

The real builds run in CI (.ci/build-rpm.sh, .ci/build-deb.sh, .ci/check-deb-autopkgtest.sh)
and check the built packages; these catch the usual drift early: a version bump in one place
only, a unit or a top-level package added without packaging it, a home page or an address that
is not the project's own.
"""

import configparser
import os
import re
from email.utils import parseaddr
from pathlib import Path

from idle_culler_daemon import __version__

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "packaging" / "rpm" / "jupyterhub-idle-culler-daemon.spec"
DEBIAN = REPO / "packaging" / "debian"
SYSTEMD = REPO / "packaging" / "systemd"
UNITS = sorted(p.name for p in SYSTEMD.iterdir() if p.suffix in (".service", ".timer"))
HOME = "https://pypi.org/project/jupyterhub-idle-culler-daemon/"
REFERENCE_PACKAGE = "python3-jupyterhub-idle-culler"
REFERENCE_REPOSITORY = "github.com/jupyterhub/jupyterhub-idle-culler"


def read(path):
    return path.read_text(encoding="utf-8")


def setup_cfg():
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg", encoding="utf-8")
    return parser


def spec_section(name):
    """The lines of one %section of the spec (up to the next one)."""
    text = read(SPEC)
    start = text.index("\n%%%s\n" % name) + len(name) + 2
    end = re.search(r"^%(files|changelog|check|post|preun|postun|install)\b", text[start:], re.M)
    return text[start:start + end.start()] if end else text[start:]


def control_fields():
    """debian/control's binary package stanza as {field: value} (continuation lines joined)."""
    stanza = read(DEBIAN / "control").split("\n\n")[1]
    fields, name = {}, None
    for line in stanza.splitlines():
        if line[:1].isspace() and name:
            fields[name] += " " + line.strip()
        else:
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return fields


def test_package_files_version_matches_the_package():
    spec = read(SPEC)
    assert re.search(r"^Version:\s+%s$" % re.escape(__version__), spec, re.M)
    first = read(DEBIAN / "changelog").splitlines()[0]
    assert first.startswith("jupyterhub-idle-culler-daemon (%s-" % __version__), first


def test_package_files_ship_every_unit():
    assert len(UNITS) == 4, UNITS
    spec = read(SPEC)
    rules = read(DEBIAN / "rules")
    for unit in UNITS:
        assert "%%{_unitdir}/%s\n" % unit in spec, unit
        assert "cp packaging/systemd/%s " % unit in rules, unit


def test_package_files_deb_leaves_the_unit_directory_to_debhelper():
    # dh_installsystemd installs the units where the building debhelper puts them (/lib on
    # Debian 12, /usr/lib later); no file of debian/ names a unit directory itself.
    for path in DEBIAN.rglob("*"):
        if path.is_file():
            assert "lib/systemd/system" not in read(path), path
    assert "dh_installsystemd --name=jupyterhub-idle-culler " in read(DEBIAN / "rules")


def test_package_files_ship_every_top_level_package():
    # The spec names the packages for %pyproject_save_files; the deb takes the wheel whole.
    packages = re.split(r"[\s,]+", setup_cfg()["options"]["packages"].strip())
    (spec_packages,) = re.findall(r"^%global python_packages (.*)$", read(SPEC), re.M)
    assert spec_packages.split() == packages
    assert "%pyproject_save_files -l %{python_packages}\n" in read(SPEC)


def test_package_files_spec_uses_the_pep625_source_name():
    spec = read(SPEC)
    assert "%global pypi_name jupyterhub_idle_culler_daemon\n" in spec
    assert "%autosetup -n %{pypi_name}-%{version}\n" in spec


def test_package_files_name_the_projects_own_home():
    assert setup_cfg()["metadata"]["url"] == HOME
    assert re.findall(r"^URL:\s+(\S+)$", read(SPEC), re.M) == [HOME]
    assert re.findall(r"^Homepage: (\S+)$", read(DEBIAN / "control"), re.M) == [HOME]
    assert re.findall(r"^Source: (\S+)$", read(DEBIAN / "copyright"), re.M) == [HOME]
    for unit in UNITS:
        documentation = re.findall(r"^Documentation=(.*)$", read(SYSTEMD / unit), re.M)
        assert documentation == ["man:jupyterhub-idle-culler(1)"], unit
    for path in [REPO / "setup.cfg", SPEC, *SYSTEMD.iterdir(), *DEBIAN.rglob("*")]:
        if path.is_file():
            assert REFERENCE_REPOSITORY not in read(path), path


def test_package_files_have_one_maintainer_address_of_the_projects_own():
    spec_changelog = re.search(r"^\* .*? (<[^>]+>)", read(SPEC).split("%changelog", 1)[1], re.M)
    deb_changelog = re.search(r"^ -- (.*?>)  ", read(DEBIAN / "changelog"), re.M)
    control = re.search(r"^Maintainer: (.*)$", read(DEBIAN / "control"), re.M)
    contact = re.search(r"^Upstream-Contact: (.*)$", read(DEBIAN / "copyright"), re.M)
    found = (spec_changelog, deb_changelog, control, contact)
    addresses = {parseaddr(match.group(1))[1] for match in found}
    assert len(addresses) == 1, addresses
    (address,) = addresses
    domain = address.rpartition("@")[2]
    assert "@" in address and domain not in ("jupyter.org", "github.com", "jupyterhub.org")


def test_package_files_spec_takes_the_references_place():
    spec = read(SPEC)
    replaced = re.search(r"^%global reference_replaced (\S+)$", spec, re.M).group(1)
    assert "%%global reference %s\n" % REFERENCE_PACKAGE in spec
    assert "Provides:       %{reference} = %{reference_replaced}\n" in spec
    assert "Obsoletes:      %{reference} < %{reference_replaced}\n" in spec
    assert "Conflicts:      %{reference}\n" in spec
    assert replaced > "2.0.0"  # it replaces the reference 2.0.0, whose interface it implements


def test_package_files_deb_takes_the_references_place():
    fields = control_fields()
    assert REFERENCE_PACKAGE in fields["Conflicts"].rstrip(",").split(", ")
    assert REFERENCE_PACKAGE in fields["Replaces"].rstrip(",").split(", ")
    assert "%s (= 2.0.0)" % REFERENCE_PACKAGE in fields["Provides"]


def test_package_files_metrics_extra_is_a_weak_dependency():
    extra = setup_cfg()["options.extras_require"]["metrics"].split()
    assert [e.split(">=")[0] for e in extra] == ["prometheus-client"]
    assert re.search(r"^Recommends:\s+python3dist\(prometheus-client\) >= 0\.9$", read(SPEC), re.M)
    assert "python3-prometheus-client" in control_fields()["Recommends"]


def test_package_files_spec_license_comes_from_the_dist_info_once():
    files = read(SPEC).split("\n%files", 1)[1].split("\n%changelog", 1)[0]
    assert "%license" not in files
    assert "%pyproject_save_files -l " in read(SPEC)


def test_package_files_spec_restarts_the_template_instances_on_upgrade():
    postun = spec_section("postun")
    assert "%systemd_postun_with_restart jupyterhub-idle-culler.service\n" in postun
    assert "systemctl try-restart 'jupyterhub-idle-culler@*.service'" in postun
    assert "systemctl stop 'jupyterhub-idle-culler@*.service'" in spec_section("preun")


def test_package_files_deb_restarts_the_template_instances_on_upgrade():
    postinst = read(DEBIAN / "jupyterhub-idle-culler-daemon.postinst")
    prerm = read(DEBIAN / "jupyterhub-idle-culler-daemon.prerm")
    assert "deb-systemd-invoke try-restart 'jupyterhub-idle-culler@*.service'" in postinst
    assert "'jupyterhub-idle-culler@*.service'" in prerm


def test_package_files_autopkgtest_names_executable_tests():
    control = read(DEBIAN / "tests" / "control")
    names = [n for line in re.findall(r"^Tests: (.*)$", control, re.M) for n in line.split()]
    assert names == ["installed-command", "upstream-tests"]
    for name in names:
        assert os.access(DEBIAN / "tests" / name, os.X_OK), name


def test_package_files_leave_ci_shims_to_ci():
    # Stand-ins for building on Debian (macros, rpmlint filters) live in .ci/, not packaging/.
    shims = [p for p in (REPO / "packaging").rglob("*") if p.name.startswith(("ci-", "ci_", "ci."))]
    assert shims == []
    assert (REPO / ".ci" / "rpm" / "debian.macros").is_file()
