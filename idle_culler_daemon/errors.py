"""The exception hierarchy: every error the culler raises on purpose derives from ``CullerError``.

Each kind maps to one handling level (STYLE.md c.8): ``ConfigError`` ends the process with exit
code 78 before anything is sent to the hub; ``HubError`` ends one pass (the daemon carries on);
``ModelError`` skips one user.
"""

from typing import Optional


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
