#!/usr/bin/env bash
# What libfailstop_preload.so costs a program that registers nothing (it
# never waits, so nothing is watched): /bin/true plain and preloaded, run
# alternately so that every variant sees the same machine (other builds,
# the CPU's clock), each run timed by the driver (wall) and by wait4's
# rusage (CPU: user + system of the child and all its threads). Prints the
# median of RUNS runs of each, and each preloaded variant's difference
# from the plain run.
#
#   scripts/preload-start-cost.sh [RUNS] [LIBRARY...]
#
# RUNS defaults to 20. Without LIBRARY, builds the preload (release,
# `cargo build --release -p failstop-preload`, in CARGO_TARGET_DIR or
# target/) and measures it; with one or more LIBRARY paths (another
# build's copy, to compare old and new), measures those, alternated in the
# same runs. PROGRAM=/path overrides /bin/true.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs="${1:-20}"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "RUNS $runs: a count from 1" >&2; exit 2; }
shift || true
libs=("$@")
if [ ${#libs[@]} -eq 0 ]; then
    cargo build --release --quiet -p failstop-preload
    libs=("${CARGO_TARGET_DIR:-$PWD/target}/release/libfailstop_preload.so")
fi
for lib in "${libs[@]}"; do
    [ -f "$lib" ] || { echo "$lib: no such file" >&2; exit 1; }
done
program="${PROGRAM:-/bin/true}"
python3 - "$runs" "$program" "${libs[@]}" <<'PY'
import os, statistics, sys, time

runs, program, libs = int(sys.argv[1]), sys.argv[2], [os.path.abspath(p) for p in sys.argv[3:]]
plain_env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
variants = [("plain", plain_env)]
for i, lib in enumerate(libs):
    label = "preloaded" if len(libs) == 1 else f"preloaded #{i + 1}"
    variants.append((label, dict(plain_env, LD_PRELOAD=lib)))
wall = {label: [] for label, _ in variants}
cpu = {label: [] for label, _ in variants}
for _ in range(runs):
    for label, env in variants:
        t0 = time.perf_counter()
        pid = os.posix_spawn(program, [program], env)
        _, status, ru = os.wait4(pid, 0)
        wall[label].append((time.perf_counter() - t0) * 1e3)
        cpu[label].append((ru.ru_utime + ru.ru_stime) * 1e3)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{program} ({label}) exited with {os.waitstatus_to_exitcode(status)}")

med = lambda d, k: statistics.median(d[k])
print(f"{program}, median of {runs} runs, variants alternated:")
for i, lib in enumerate(libs):
    label = variants[i + 1][0]
    print(f"  {label}: {lib}")
print(f"  {'':14s} {'wall ms':>9s} {'diff':>8s} {'CPU ms':>9s} {'diff':>8s}")
for label, _ in variants:
    w, c = med(wall, label), med(cpu, label)
    if label == "plain":
        print(f"  {label:14s} {w:9.2f} {'':8s} {c:9.2f}")
    else:
        print(f"  {label:14s} {w:9.2f} {w - med(wall, 'plain'):+8.2f} {c:9.2f} {c - med(cpu, 'plain'):+8.2f}")
PY
