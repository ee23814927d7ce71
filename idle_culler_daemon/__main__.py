"""``python -m idle_culler_daemon``: the same entry point as ``jupyterhub-idle-culler``."""

import sys

from idle_culler_daemon.cli import main

if __name__ == "__main__":
    sys.exit(main())
