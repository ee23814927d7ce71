"""Which installed distribution provides the running code, and whether the reference culler's
distribution shares this environment.

This package and jupyterhub-idle-culler both install the module ``jupyterhub_idle_culler`` and
the command ``jupyterhub-idle-culler``. pip lets the second installed overwrite the first's
files, and uninstalling either deletes the files its own record lists: so with both installed,
``pip uninstall jupyterhub-idle-culler`` deletes this culler's module and command too. Read
through ``importlib.metadata`` only (no pip, no network).
"""

import json
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Iterable, List, Optional

THIS = "jupyterhub-idle-culler-daemon"
REFERENCE = "jupyterhub-idle-culler"
PROG = "jupyterhub-idle-culler"


def _normal(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _named(name: str, dists: Optional[Iterable[metadata.Distribution]] = None
           ) -> List[metadata.Distribution]:
    wanted = _normal(name)
    found = dists if dists is not None else metadata.distributions()
    return [dist for dist in found if _normal(dist.metadata["Name"] or "") == wanted]


def provider(module_file: str, dists: Optional[Iterable[metadata.Distribution]] = None
             ) -> Optional[metadata.Distribution]:
    """The installed distribution whose RECORD lists ``module_file``, or None (a source tree,
    an editable install). An ``.egg-info`` in a source tree lists its files too, in
    SOURCES.txt, but is no installation: only distributions with a RECORD count."""
    target = Path(module_file).resolve()
    for dist in dists if dists is not None else metadata.distributions():
        if dist.read_text("RECORD") is None:
            continue
        for entry in dist.files or ():
            if entry.name == target.name and Path(str(dist.locate_file(entry))).resolve() == target:
                return dist
    return None


def version_line(version: str, module_file: str) -> str:
    """What ``--version`` prints: this program's version and the distribution it runs from."""
    dist = provider(module_file)
    if dist is not None:
        return "%s %s (from %s %s)" % (PROG, version, dist.metadata["Name"], dist.version)
    for ours in _named(THIS):
        if (_direct_url(ours).get("dir_info") or {}).get("editable"):
            return "%s %s (from %s %s, an editable install of %s)" % (
                PROG, version, ours.metadata["Name"], ours.version, _direct_url(ours)["url"])
    return "%s %s (from a source tree, not an installed distribution)" % (PROG, version)


def _direct_url(dist: metadata.Distribution) -> dict:
    """What pip recorded about where ``dist`` was installed from (PEP 610), or {}."""
    try:
        found = json.loads(dist.read_text("direct_url.json") or "null")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _reinstall_source(dists: Optional[Iterable[metadata.Distribution]]) -> str:
    """What to give ``pip install --force-reinstall``: the file or folder this package was
    installed from when pip recorded it (PEP 610), else its name and version."""
    for dist in _named(THIS, dists):
        direct = _direct_url(dist)
        url = str(direct.get("url", ""))
        if url.startswith("file://") and not (direct.get("dir_info") or {}).get("editable"):
            return url[len("file://"):]
        return "%s==%s" % (THIS, dist.version)
    return THIS


def reference_warning(dists: Optional[Iterable[metadata.Distribution]] = None,
                      python: str = sys.executable) -> Optional[str]:
    """One sentence when jupyterhub-idle-culler is installed next to this package, else None."""
    dists = list(dists if dists is not None else metadata.distributions())
    others = _named(REFERENCE, dists)
    if not others:
        return None
    return ("%s %s is also installed in this environment (%s) and owns the same "
            "jupyterhub_idle_culler module and %s command: 'pip uninstall %s' would delete "
            "them and leave 'python -m jupyterhub_idle_culler' without a culler. Remove it "
            "safely with: %s -m pip uninstall -y %s && %s -m pip install --force-reinstall "
            "--no-deps %s"
            % (REFERENCE, others[0].version, others[0].locate_file(""), PROG, REFERENCE,
               python, REFERENCE, python, _reinstall_source(dists)))
