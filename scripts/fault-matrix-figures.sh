#!/usr/bin/env bash
# Runs the fault matrix (tests/fault_matrix.rs and tests/locks.rs) N times
# and prints, per fault, the verdict and the time from the fault's start to
# the verdict and to the end of the process: min / median / max over the
# runs. These are the figures of RELIABILITY.md.
#
#   scripts/fault-matrix-figures.sh [N]     (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-5}" in
    '' | *[!0-9]*) echo "usage: $0 [N]   (N: the number of runs, a positive integer)" >&2; exit 2 ;;
esac
runs=${1:-5}
[ "$runs" -ge 1 ] || { echo "$0: N must be at least 1" >&2; exit 2; }

lines=$(mktemp)
trap 'rm -f "$lines"' EXIT
cargo test -q --test fault_matrix --test locks --no-run
for i in $(seq "$runs"); do
    # The children run one at a time; --test-threads=1 keeps the parents so.
    cargo test -q --test fault_matrix --test locks -- --nocapture --test-threads=1 2>/dev/null \
        | grep -o 'MATRIX .* detected in .*' >>"$lines" || true
    echo "run $i of $runs done" >&2
done

python3 - "$lines" <<'PY'
import re, statistics, sys
rows = {}
pat = re.compile(r'^MATRIX (\w+): (.*) "[^"]*", detected in (\d+) ms \(expected (\d+), bound (\d+)\), process ended (\d+) ms')
for line in open(sys.argv[1]):
    m = pat.match(line)
    if m:
        r = rows.setdefault(m[1], {"verdict": m[2], "expected": m[4], "bound": m[5], "det": [], "end": []})
        r["det"].append(int(m[3]))
        r["end"].append(int(m[6]))
fmt = lambda v: f"{min(v)} / {statistics.median(v):.0f} / {max(v)}"
print("| fault | verdict | detected, ms (min / median / max) | expected, ms | bound, ms | process ended, ms (min / median / max) | runs |")
print("|---|---|---|---|---|---|---|")
for name, r in rows.items():
    print(f"| `{name}` | {r['verdict']} | {fmt(r['det'])} | {r['expected']} | {r['bound']} | {fmt(r['end'])} | {len(r['det'])} |")
PY
