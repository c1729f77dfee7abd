#!/usr/bin/env bash
# The cost of libfailstop_preload.so on a server that forks its workers:
# Debian's nginx (master_process on, 2 workers, `return 200` from memory)
# under wrk on loopback, plain and preloaded, alternated in one run (ABBA
# per round) so that both see the same machine. Prints requests/s of each
# run and the workers' CPU time per request (user + system, from /proc:
# less sensitive than throughput to what else the machine runs), the ratios
# preloaded/plain per round, then their min / median / max.
#
#   cargo build --release -p failstop-preload
#   scripts/preload-nginx-throughput.sh [ROUNDS] [SECONDS]     (default 6 rounds of 5 s)
#
# Needs nginx (nginx-light) and wrk, and root (nginx's workers switch to
# nobody). The preload runs with the default budgets.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds="${1:-6}"
secs="${2:-5}"
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS $rounds: a count from 1" >&2; exit 2; }
[[ "$secs" =~ ^[1-9][0-9]*$ ]] || { echo "SECONDS $secs: a count from 1" >&2; exit 2; }
lib="$PWD/target/release/libfailstop_preload.so"
[ -e "$lib" ] || { echo "$lib not found: cargo build --release -p failstop-preload" >&2; exit 1; }
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "nginx not found: apt-get install nginx-light" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
nginx=$(command -v nginx || echo /usr/sbin/nginx)

dir=$(mktemp -d /tmp/failstop-nginx-bench.XXXXXX)
chmod 755 "$dir"
trap 'rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/error.log notice;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 100000000;
  client_body_temp_path $dir/body; proxy_temp_path $dir/proxy; fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
  server { listen 127.0.0.1:$port; location / { return 200 "ok\n"; } }
}
EOF

# One run: start nginx (preloaded if $1 is "preload"), wrk for $secs, stop.
run() {
    local pre=() pid rps
    [ "$1" = preload ] && pre=(env "LD_PRELOAD=$lib")
    "${pre[@]}" "$nginx" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" &
    pid=$!
    for _ in $(seq 100); do
        if { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then exec 3>&-; break; fi
        sleep 0.05
    done
    local out requests cpu0 cpu1
    cpu0=$(workers_ticks "$pid")
    out=$(wrk -t2 -c50 -d"${secs}s" "http://127.0.0.1:$port/")
    cpu1=$(workers_ticks "$pid")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    kill -QUIT "$pid"
    wait "$pid" || true
    if grep -q "failstop: " "$dir/error.log"; then
        echo "failstop said something in error.log:" >&2
        grep "failstop" "$dir/error.log" >&2
        exit 1
    fi
    # CPU µs per request: clock ticks to µs.
    echo "$rps $(python3 -c "print(f'{($cpu1 - $cpu0) * 1e6 / $(getconf CLK_TCK) / $requests:.3f}')")"
}

# utime + stime of the workers (the master's children), in clock ticks.
workers_ticks() {
    local t=0 w
    for w in $(pgrep -P "$1"); do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$w/stat")))
    done
    echo "$t"
}

ratios=()
cpu_ratios=()
for r in $(seq "$rounds"); do
    if (( r % 2 )); then a=$(run plain); b=$(run preload); else b=$(run preload); a=$(run plain); fi
    read -r a_rps a_cpu <<<"$a"
    read -r b_rps b_cpu <<<"$b"
    ratio=$(python3 -c "print(f'{$b_rps / $a_rps:.3f}')")
    cpu_ratio=$(python3 -c "print(f'{$b_cpu / $a_cpu:.3f}')")
    ratios+=("$ratio")
    cpu_ratios+=("$cpu_ratio")
    echo "round $r: plain $a_rps req/s $a_cpu us CPU/req, preload $b_rps req/s $b_cpu us CPU/req; throughput ratio $ratio, CPU/req ratio $cpu_ratio"
done
python3 - "${ratios[*]}" "${cpu_ratios[*]}" <<'EOF'
import sys, statistics
for what, arg in (("throughput", sys.argv[1]), ("CPU per request", sys.argv[2])):
    v = sorted(float(x) for x in arg.split())
    print(f"{what} ratio preload/plain over {len(v)} rounds: min {v[0]:.3f} median {statistics.median(v):.3f} max {v[-1]:.3f}")
EOF
