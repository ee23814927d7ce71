#!/usr/bin/env bash
# Run the source package's autopkgtest (packaging/debian/tests/control) on this machine, against
# the built .deb: `autopkgtest DSC DEB -- null`. The null runner installs the package and the
# tests' dependencies here with apt-get and runs the tests as they come; the package is purged
# afterwards when it was not installed before (the tests' dependencies stay).
#   usage: .ci/check-deb-autopkgtest.sh      (after .ci/build-deb.sh; run from the repo root)
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/lib-packaging.sh

ensure_packages autopkgtest
dscs=(build/deb/"${PKG}"_*.dsc)
debs=(build/deb/"${PKG}"_*_all.deb)
[ ${#dscs[@]} -eq 1 ] && [ -f "${dscs[0]}" ] && [ ${#debs[@]} -eq 1 ] && [ -f "${debs[0]}" ] \
    || die "want one .dsc and one .deb in build/deb (run .ci/build-deb.sh): ${dscs[*]} ${debs[*]}"
if installed "$PKG"; then
    die "$PKG is already installed here; remove it first (this check installs and purges it)"
fi
out=$(mktemp -d)
cleanup() {
    purge_if_present "$PKG"
    rm -rf "$out"
}
trap cleanup EXIT

step "autopkgtest ${dscs[0]} ${debs[0]} -- null"
rc=0
autopkgtest --output-dir "$out/results" "${dscs[0]}" "${debs[0]}" -- null >"$out/log" 2>&1 \
    || rc=$?
summary=$out/results/summary
if [ "$rc" -ne 0 ] || [ ! -s "$summary" ]; then
    tail -80 "$out/log" >&2
    die "autopkgtest failed (exit $rc)"
fi
for test in installed-command upstream-tests; do
    sed -n '/^=* *[0-9]* passed/p;/^--version\|^--once\|^verify\|^man page/p' \
        "$out/results/$test-stdout" 2>/dev/null | sed "s/^/$test: /"
done
echo "--- summary"
cat "$summary"
[ "$(grep -c . "$summary")" -eq 2 ] || die "autopkgtest ran $(grep -c . "$summary") tests, not 2"
refuse "$(cat "$summary")" ' (FAIL|SKIP|FLAKY)' "a test that did not pass"
echo
echo "OK: the autopkgtest passed against the installed package"
