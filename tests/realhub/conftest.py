# Fixtures for the tests in this folder. If tests/conftest.py imports them too (for
# tests/integration/), remove this import: both would work, but would start two shared hubs.
from .fixtures import fresh_realhub, realhub, realhub_factory  # noqa: F401
