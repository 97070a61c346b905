#!/usr/bin/env bash
# Every test, on a fresh machine too: installs what it needs, lints, runs unit and integration
# tests, then the Molecule scenarios on lab hosts. The lab is torn down at the end, also after a
# failure. The last line is the count over everything: "tests: N passed, N failed".
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/require-root.sh"
require_root test "it installs Debian packages, and the Molecule scenarios build lab hosts (namespaces, nftables, nspawn)"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bin=$(scripts/bootstrap.sh | tail -n 1) || { echo "test: bootstrap failed" >&2; exit 2; }
export PATH="$bin:$PATH" ANSIBLE_FORCE_COLOR=0 PY_COLORS=0 ANSIBLE_NOCOLOR=1
results=$root/.cache/results
rm -rf "$results"; mkdir -p "$results"
trap 'python lab/labctl.py down >/dev/null 2>&1 || true' EXIT
failed=()

step() {  # step NAME CMD...: run, remember a failure, go on (so one run shows every problem)
  local name=$1; shift
  echo "=== $name" >&2
  local t0=$SECONDS
  if "$@"; then echo "=== $name: ok ($((SECONDS - t0)) s)" >&2
  else echo "=== $name: FAILED ($((SECONDS - t0)) s)" >&2; failed+=("$name"); fi
}

# The integration tests (mostly waiting on the ansible-playbook, moto and kamailio -c processes they
# start) run beside the lint steps and the unit tests (CPU on one core), before any lab host exists:
# on 2 cores ~1 min less than one after the other. Their output is printed when both are done.
( failed=()
  step "integration tests" python -m pytest -q -p no:cacheprovider --junitxml="$results/pytest-integration.xml" \
    tests/integration
  printf '%s\n' "${failed[@]}" > "$results/integration.failed" ) > "$results/integration.log" 2>&1 &
integration=$!
step "ruff" ruff check .
step "yamllint" yamllint -s .
step "ansible-lint" ansible-lint
step "changelog fragments" antsibull-changelog lint
step "ansible-test sanity" scripts/sanity.sh
step "unit tests" python -m pytest -q -p no:cacheprovider --junitxml="$results/pytest-unit.xml" tests/unit
wait "$integration"
cat "$results/integration.log" >&2
if [ -f "$results/integration.failed" ]; then
  while IFS= read -r name; do [ -n "$name" ] && failed+=("$name"); done < "$results/integration.failed"
else
  failed+=("integration tests")
fi
logged() {  # logged FILE CMD...: run CMD, its output to the terminal and to FILE
  local file=$1; shift
  PYTHONUNBUFFERED=1 "$@" 2>&1 | tee "$file"  # unbuffered: through a pipe Python would write in bursts
  return "${PIPESTATUS[0]}"
}
for scenario in ${ITSP_SCENARIOS:-default media cluster security rolling eip bigbox migrate}; do
  step "molecule $scenario" logged "$results/molecule-$scenario.log" molecule test -s "$scenario"
done

python - "$results" "${failed[@]}" <<'PY'
import glob, sys, xml.etree.ElementTree as ET

def clip(text):
    """One line; a long one keeps its start (what failed) and its end (the cause: journal lines)."""
    text = " ".join(text.split())
    return text if len(text) <= 2400 else text[:600] + " [...] " + text[-1800:]

passed = failed = skipped = 0
for path in sorted(glob.glob(sys.argv[1] + "/*.xml")):
    root = ET.parse(path).getroot()
    for suite in root.iter("testsuite"):
        t, f, e, s = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
        passed += t - f - e - s; failed += f + e; skipped += s
    # The end of the output is what a CI page shows: name every failed test there, with its message.
    for case in root.iter("testcase"):
        for bad in list(case.findall("failure")) + list(case.findall("error")):
            message = clip(bad.get("message") or bad.text or "")
            print(f"FAILED {path.rsplit('/', 1)[-1]}: {case.get('classname')}::{case.get('name')}: {message}")
steps = sys.argv[2:]
# A scenario that failed before its tests (in converge, say) has no test to name: its failed tasks.
for step in steps:
    if step.startswith("molecule "):
        try:
            with open(f"{sys.argv[1]}/molecule-{step.split()[1]}.log", errors="replace") as log:
                tasks = [line.strip() for line in log if line.startswith("fatal: [") or "| FAILED! =>" in line]
        except OSError:
            tasks = []
        for line in tasks[:3]:
            print(f"FAILED {step}: {clip(line)}")
if steps:
    print("failed steps: " + ", ".join(steps))
    failed = max(failed, 1)
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
PY
