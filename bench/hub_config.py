# Extra JupyterHub settings for the real-hub benchmark (bench/realhub.py).
#
# tests/support/jupyterhub_config.py runs this file last (RealHub(extra_config=...)), with the
# same `c`. It reads bench-hub.json in the hub's state folder, written by bench/realhub.py:
#   {"api_page_max_limit": int or null, "trust_user_provided_tokens": bool}

import json
import os

import jupyterhub.log

with open(os.path.join(os.environ["REALHUB_STATE_DIR"], "bench-hub.json")) as _f:
    _BENCH = json.load(_f)

# The benchmark counts the culler's requests by kind from the hub's own access log. The hub
# writes `state=[secret]` there, because OAuth uses a parameter of the same name; here the value
# of `state` (ready, inactive) is logged as it is. Nothing secret travels in it on this hub.
jupyterhub.log.SCRUB_PARAM_KEYS = tuple(
    key for key in jupyterhub.log.SCRUB_PARAM_KEYS if key != "state"
)

# No periodic poll of every server: with thousands of servers its bursts (every 30 s) would
# land inside some passes and not others. The hub's work during a pass is then the culler's.
c.Spawner.poll_interval = 0  # noqa: F821  (provided by the hub's config loader)

if _BENCH.get("api_page_max_limit"):
    c.JupyterHub.api_page_max_limit = int(_BENCH["api_page_max_limit"])  # noqa: F821

# Tokens from the configuration are hashed with 16384 rounds of SHA-512 (about 2 ms of the
# hub's CPU on every request here) unless the hub is told to trust them.
c.JupyterHub.trust_user_provided_tokens = bool(  # noqa: F821
    _BENCH.get("trust_user_provided_tokens")
)
