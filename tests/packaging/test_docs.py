"""The project's documents: complete, true to the code, and self-contained.

README.md is short, for a visitor, without an option table (docs/reference.md, generated, has
them); its install lines work and never leave a hub without a culler. docs/behaviour.md (or the
reference) names every metric and log event, cites no test IDs, and every link to one of its
headings leads somewhere. No tracked file refers to documents the repository does not contain.
"""

import os
import pathlib
import re
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
README = REPO / "README.md"
BEHAVIOUR = REPO / "docs" / "behaviour.md"
PACKAGE = REPO / "idle_culler_daemon"

# Pointers to documents that live outside the repository (the first round's behaviour contract
# and style guide, and their measured-facts notes). Built from pieces so that this file does
# not match itself.
_SPEC, _STYLE = "SPEC", "STYLE"
OUTSIDE_REFERENCES = re.compile("|".join([
    r"\.\./shared",
    _SPEC + r"\.md",
    _STYLE + r"\.md",
    _SPEC + r" sections?\b",
    _SPEC + r" §",
    _SPEC + r" [0-9]",
    _STYLE + r" [a-z]\.[0-9]",
    r"reference/real-jupyterhub\.md",
    r"reference/systemd-packaging\.md",
]))

# Package modules that still carry such pointers while the package is being rewritten. Each
# entry must go once its file is fixed (the test below fails for an entry that no longer has
# a hit, so the list can only shrink); then delete the list.
PENDING_IN_PACKAGE = set()


def tracked_files():
    try:
        result = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                                timeout=60)
    except FileNotFoundError:
        result = None
    if result is None or result.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail("not a git checkout: cannot list the tracked files")
        pytest.skip("not a git checkout: cannot list the tracked files")
    return [name for name in result.stdout.decode("utf-8").split("\0") if name]


def read_text(relative):
    path = REPO / relative
    if not path.is_file():  # deleted in the working tree, or a submodule
        return ""
    return path.read_bytes().decode("utf-8", errors="replace")


def github_anchor(heading):
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def documentation():
    """behaviour.md, plus the generated docs/reference.md once it exists."""
    reference = REPO / "docs" / "reference.md"
    extra = reference.read_text(encoding="utf-8") if reference.is_file() else ""
    return BEHAVIOUR.read_text(encoding="utf-8") + extra


def behaviour_anchors():
    text = BEHAVIOUR.read_text(encoding="utf-8")
    headings = re.findall(r"^#{1,6} (.+)$", strip_code_blocks(text), flags=re.MULTILINE)
    return [github_anchor(heading) for heading in headings]


def strip_code_blocks(text):
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def readme_blocks(language):
    """The README's fenced code blocks of one language, in order."""
    text = README.read_text(encoding="utf-8")
    return re.findall(r"^```%s\n(.*?)^```" % re.escape(language), text,
                      flags=re.MULTILINE | re.DOTALL)


def test_readme_is_short_and_has_no_option_table():
    # The options live in docs/reference.md, generated from their declarations.
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250
    assert [line for line in lines if line.startswith("| `--")] == []


def test_readme_shows_the_two_commands_and_the_demo_comes_before_install():
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text
    assert text.index("make demo") < text.index("\n## Install\n")


def test_every_link_to_a_readme_heading_leads_somewhere():
    text = README.read_text(encoding="utf-8")
    anchors = {github_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", strip_code_blocks(text),
                                                     flags=re.MULTILINE)}
    assert [a for a in re.findall(r"\]\(#([\w-]+)\)", text) if a not in anchors] == []


def test_no_file_refers_to_documents_outside_the_repository():
    hits = []
    pending_hit = set()
    for name in tracked_files():
        for number, line in enumerate(read_text(name).splitlines(), 1):
            if OUTSIDE_REFERENCES.search(line):
                if name in PENDING_IN_PACKAGE:
                    pending_hit.add(name)
                else:
                    hits.append("%s:%d: %s" % (name, number, line.strip()))
    assert not hits, "point at docs/behaviour.md or docs/architecture.md instead:\n" + \
        "\n".join(hits)
    fixed = sorted(PENDING_IN_PACKAGE - pending_hit)
    assert not fixed, "no outside reference left here; remove from PENDING_IN_PACKAGE: %s" % fixed


def test_behaviour_headings_are_unique():
    anchors = behaviour_anchors()
    assert sorted({a for a in anchors if anchors.count(a) > 1}) == []


def test_every_link_into_behaviour_md_names_one_of_its_headings():
    anchors = set(behaviour_anchors())
    broken = []
    for name in tracked_files() + ["docs/behaviour.md"]:
        text = read_text(name)
        targets = re.findall(r"behaviour\.md#([\w-]+)", text)
        if name == "docs/behaviour.md":
            targets += re.findall(r"\]\(#([\w-]+)\)", text)
        broken += ["%s: #%s" % (name, target) for target in targets if target not in anchors]
    assert broken == []


def test_behaviour_md_documents_every_metric():
    source = "\n".join(path.read_text(encoding="utf-8") for path in PACKAGE.rglob("*.py"))
    names = set(re.findall(r'PREFIX \+ "([a-z_]+)"', source))
    assert names, "no metric found: has the naming in the package changed?"
    text = documentation()
    missing = sorted(n for n in names if "`jupyterhub_idle_culler_%s" % n not in text)
    assert missing == []


def test_behaviour_md_documents_every_log_event():
    source = "\n".join(path.read_text(encoding="utf-8") for path in PACKAGE.rglob("*.py"))
    events = set(re.findall(r'\blog\.(?:debug|info|warning|error|exception)\(\s*"([a-z][a-z-]*)',
                            source))
    assert len(events) > 10, "few log events found: has the logging style changed?"
    text = documentation()
    missing = sorted(event for event in events if "| `%s` |" % event not in text)
    assert missing == []


def test_behaviour_md_cites_no_test_ids():
    # It is for people: renaming a test must not mean editing the operator's document.
    text = BEHAVIOUR.read_text(encoding="utf-8")
    assert re.findall(r"tests/[\w/]+\.py::\w+|::test_\w+", text) == []


# Lines that install this package; each must come after the uninstall line below, in the same
# block, or force the reinstall: the two packages own the same module and command.
INSTALLS = re.compile(r"pip install .*(jupyterhub[-_]idle[-_]culler[-_]daemon|\s\.(\s|$))")
SAFE_ORDER = "pip uninstall -y jupyterhub-idle-culler jupyterhub-idle-culler-daemon"


def test_readme_installs_this_package_only_in_an_order_that_cannot_fail():
    blocks = readme_blocks("sh") + readme_blocks("dockerfile")
    installs = 0
    for block in blocks:
        for number, line in enumerate(block.splitlines()):
            if not INSTALLS.search(line) or "make " in line:
                continue
            installs += 1
            before = "\n".join(block.splitlines()[:number])
            assert SAFE_ORDER in before or "--force-reinstall" in line, line
    assert installs >= 3  # Install, Zero-to-JupyterHub, The Littlest JupyterHub


def test_readme_install_starts_with_a_line_that_works_today():
    # The project is not on PyPI: the first install line is from a checkout or a wheel.
    text = README.read_text(encoding="utf-8")
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert "## Install" in headings
    install = text.split("\n## Install\n", 1)[1].split("\n## ", 1)[0]
    first = re.search(r"^pip install (\S+)", install, flags=re.MULTILINE).group(1)
    assert first in (".", "./dist/jupyterhub_idle_culler_daemon-*.whl")
    assert "python3-jupyterhub-idle-culler" in install  # what the RPM and the deb replace


def test_every_behaviour_marker_names_a_section_of_behaviour_md():
    # Traceability lives on the tests: @pytest.mark.behaviour("reload") names the section.
    anchors = set(behaviour_anchors())
    named = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        named += [(path.name, section) for section in
                  re.findall(r"mark\.behaviour\(\s*[\"']([^\"']*)[\"']", text)]
    assert named, "no test names a behaviour.md section"
    assert [(name, s) for name, s in named if s not in anchors] == []
