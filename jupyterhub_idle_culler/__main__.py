"""``python -m jupyterhub_idle_culler``: the command line that hub configurations written for
jupyterhub-idle-culler use (Zero-to-JupyterHub, The Littlest JupyterHub) runs this culler."""

import sys

from idle_culler_daemon.cli import main

if __name__ == "__main__":
    sys.exit(main())
