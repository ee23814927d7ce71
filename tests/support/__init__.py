"""Test doubles and harnesses shared by the tests, the benchmarks (bench/) and the demo (scripts/).

Import them as ``tests.support.fakehub`` and ``tests.support.realhub`` with the repository root on
the import path: pytest puts it there, and ``make bench`` / ``make demo`` run ``python -m`` from it.
"""
