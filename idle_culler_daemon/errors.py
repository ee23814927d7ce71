"""The culler's errors and the process exit codes they lead to: both live here, in one place.

Each kind of error is handled at one level (docs/architecture.md#errors): ``ConfigError``
ends the process with ``EXIT_CONFIG`` before anything is sent to the hub; ``HubError`` ends one
pass (the daemon carries on; ``--once`` exits ``EXIT_TEMPFAIL``); ``ModelError`` skips one user.
Anything else that reaches the loop is a bug: ``EXIT_BUG``.
"""

from typing import Optional

EXIT_OK = 0
EXIT_BUG = 1        # an unexpected error, logged with its traceback
EXIT_USAGE = 2      # argparse's own code for an unknown option or a missing value
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL: --once could not reach the hub, or the pass had failures
EXIT_CONFIG = 78    # EX_CONFIG: a bad option, an unreadable file, no token, a missing scope

#: What each exit code means: a few words (for ``--help``), then the whole story (for the man
#: page and docs/reference.md).
EXIT_CODES = {
    EXIT_OK: ("done", "The daemon was stopped, or the single pass of --once succeeded, or "
                      "--check-config found the configuration good. Also for --help, "
                      "--version, --show-config and --generate-config."),
    EXIT_BUG: ("unexpected error", "A bug: the log has the traceback."),
    EXIT_USAGE: ("usage", "An unknown option or a missing option value."),
    EXIT_TEMPFAIL: ("hub unreachable, failures or the mass-cull guard (--once)",
                    "With --once: the hub could not be reached, some stops or deletions "
                    "failed, or the mass-cull guard (--max-stop-fraction) stopped the pass; "
                    "with --check-config --preflight: the hub could not be reached "
                    "(EX_TEMPFAIL; try again later)."),
    EXIT_CONFIG: ("configuration error", "A bad option value, an unreadable file, no API "
                  "token, a token that lacks a needed scope, or a --url that answers but is "
                  "not the JupyterHub API (EX_CONFIG). Nothing was changed on the hub. A "
                  "reload never exits: a bad configuration is refused and the running one "
                  "stays."),
}


class CullerError(Exception):
    """Base class of the culler's own errors."""


class ConfigError(CullerError):
    """A configuration problem: bad option value, unreadable file, missing token or scope."""


class ModelError(CullerError):
    """A user model from the hub that cannot be understood safely."""


class HubError(CullerError):
    """A problem talking to the hub."""

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status


class HubUnavailable(HubError):
    """The hub could not be reached, timed out, or answered 5xx after the retries."""


class HubAuthError(HubError):
    """The hub refused the token (401) or its scopes (403)."""


class HubProtocolError(HubError):
    """The hub answered something that is not what its REST API documents (bad JSON, shape)."""


class HubHTTPError(HubError):
    """Any other unexpected HTTP status."""


def status_class(status: Optional[int]) -> str:
    """The label of a failed request for counting: ``3xx``, ``4xx``, ``5xx`` or ``connection``."""
    return "connection" if status is None else "%dxx" % (status // 100)
