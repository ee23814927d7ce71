"""The ``soak`` marker of the soak test (it runs in ``make test`` by default; ``-m "not soak"``
leaves it out)."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "soak: a long run of the daemon (minutes) against a churning fake hub")
