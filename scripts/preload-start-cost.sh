#!/usr/bin/env bash
# What libfailstop_preload.so costs a program that never waits (it watches
# nothing): `/bin/true` plain and preloaded, alternated in one run so that
# both see the same machine. Prints the median wall time and CPU time (user
# + system, from wait4) of each over RUNS runs, and the differences.
#
#   cargo build --release -p failstop-preload
#   scripts/preload-start-cost.sh [RUNS] [LIBRARY]   (default 20 runs, target/release/libfailstop_preload.so)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs="${1:-20}"
lib="${2:-$PWD/target/release/libfailstop_preload.so}"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "RUNS $runs: a count from 1" >&2; exit 2; }
[ -e "$lib" ] || { echo "$lib not found: cargo build --release -p failstop-preload" >&2; exit 1; }
python3 - "$runs" "$lib" <<'PY'
import os, statistics, sys, time
runs, lib = int(sys.argv[1]), sys.argv[2]
wall = {"plain": [], "preloaded": []}
cpu = {"plain": [], "preloaded": []}
env = dict(os.environ, LD_PRELOAD=lib)
for _ in range(runs):
    for kind, e in (("plain", dict(os.environ)), ("preloaded", env)):
        t = time.perf_counter()
        pid = os.posix_spawn("/bin/true", ["/bin/true"], e)
        _, status, ru = os.wait4(pid, 0)
        wall[kind].append((time.perf_counter() - t) * 1e3)
        cpu[kind].append((ru.ru_utime + ru.ru_stime) * 1e3)
        assert os.waitstatus_to_exitcode(status) == 0, kind
m = lambda d, k: statistics.median(d[k])
print(f"/bin/true, median of {runs} ({lib}):")
print(f"  wall: plain {m(wall, 'plain'):.2f} ms, preloaded {m(wall, 'preloaded'):.2f} ms, "
      f"difference {m(wall, 'preloaded') - m(wall, 'plain'):+.2f} ms")
print(f"  CPU:  plain {m(cpu, 'plain'):.2f} ms, preloaded {m(cpu, 'preloaded'):.2f} ms, "
      f"difference {m(cpu, 'preloaded') - m(cpu, 'plain'):+.2f} ms")
PY
