"""The JupyterHub versions of the real-hub tests, read from tests/realhub/hub-versions.txt.

Each version lives in its own virtual environment of the checkout (made by
`scripts/install-realhub.sh`, which reads the same file). `selected()` is the list a test run
covers: $REALHUB_VERSIONS ("all", or keys such as "1.5,6.1"), by default only DEFAULT.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
VERSIONS_FILE = REPO / "tests" / "realhub" / "hub-versions.txt"
DEFAULT = "6.1"  # what `make test` and `make demo` use (.venv-hub)


@dataclass(frozen=True)
class HubVersion:
    key: str  # "1.5"
    python: str  # "3.9", or "default"
    folder: str  # ".venv-hub-1.5"
    requirements: tuple  # ("jupyterhub==1.5.1", "SQLAlchemy<1.5", ...)

    @property
    def version(self) -> str:
        """The exact JupyterHub release, e.g. "1.5.1"."""
        return self.requirements[0].split("==", 1)[1]

    @property
    def version_info(self) -> tuple:
        return tuple(int(part) for part in self.version.split(".")[:3])

    @property
    def pins(self) -> tuple:
        return self.requirements[1:]

    @property
    def has_scopes(self) -> bool:
        """Roles and scopes exist from JupyterHub 2.0; before, a service is admin or not."""
        return self.version_info >= (2, 0)

    @property
    def venv(self) -> Path:
        return REPO / self.folder

    @property
    def hub_bin(self) -> Path:
        return self.venv / "bin" / "jupyterhub"

    def installed(self) -> tuple[bool, str]:
        if self.hub_bin.exists():
            return True, ""
        command = "bash scripts/install-realhub.sh" + ("" if self.key == DEFAULT else
                                                        " " + self.key)
        return False, f"missing {self.folder}/bin/jupyterhub (run: {command})"

    def __str__(self) -> str:
        return f"JupyterHub {self.version}"


def read_versions(path: Path = VERSIONS_FILE) -> dict[str, HubVersion]:
    versions = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        key, python, folder, *requirements = fields
        if not requirements or not requirements[0].startswith("jupyterhub=="):
            raise ValueError(f"{path}: {line!r}: the requirements must start with jupyterhub==")
        versions[key] = HubVersion(key, python, folder, tuple(requirements))
    return versions


VERSIONS = read_versions()


def get(key: str | HubVersion | None = None) -> HubVersion:
    """The version of that key (None: DEFAULT)."""
    if isinstance(key, HubVersion):
        return key
    key = DEFAULT if key is None else key
    try:
        return VERSIONS[key]
    except KeyError:
        raise ValueError(f"no JupyterHub {key!r} in {VERSIONS_FILE.name}: "
                         f"{', '.join(VERSIONS)}") from None


def selected(environ=None) -> list[HubVersion]:
    """The versions named by $REALHUB_VERSIONS ("all" or "KEY,KEY"), else [DEFAULT]."""
    environ = os.environ if environ is None else environ
    wanted = environ.get("REALHUB_VERSIONS", "").strip()
    if not wanted:
        return [get(DEFAULT)]
    if wanted == "all":
        return list(VERSIONS.values())
    return [get(key.strip()) for key in wanted.split(",") if key.strip()]
