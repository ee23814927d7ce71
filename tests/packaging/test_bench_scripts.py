"""The benchmark drivers still load and answer --help: they import the test harness
(tests/support), and a name renamed there must not first break a 15-minute benchmark run."""

import re
import subprocess
import sys

import pytest

from tests.support import hubversions


@pytest.mark.parametrize("module", ["bench.run", "bench.realhub", "bench.profile"])
def test_bench_module_answers_help(module):
    done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


def test_bench_realhub_names_the_hub_version_it_measures():
    from bench.realhub import hub_version

    version = hub_version()
    if hubversions.get().hub_bin.exists():
        assert re.match(r"^\d+\.\d+\.\d+", version), version
    else:
        assert version == "?"
