#!/usr/bin/env bash
# packaging/monitoring/: the Prometheus alert rules pass `promtool check rules` and their unit
# tests (`promtool test rules`), with Debian's promtool (.ci/promtool.sh). The Grafana
# dashboard's queries are checked against a live scrape by tests/packaging/test_monitoring.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PROMTOOL=$(bash .ci/promtool.sh)
echo "=== $("$PROMTOOL" --version 2>&1 | head -n 1)"
cd packaging/monitoring
"$PROMTOOL" check rules alerts.yml
"$PROMTOOL" test rules alerts.test.yml
