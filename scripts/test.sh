#!/usr/bin/env bash
# The README's test command (and the last step of .ci/run): installs the
# Debian packages the tests run, if any is missing, then runs the whole
# test suite of the workspace.
#
#   gcc, libc6-dev   cc: the C programs of tests/ and examples/c/ (the C ABI,
#                    dlopen, the epoll echo server, the C example of docs/c.md)
#   binutils         nm, readelf: the exported symbols, SONAMEs, DT_NEEDED;
#                    strip, objdump: scripts/deb.sh, and the stripped program
#                    of cli/tests/symbolize.rs
#   dpkg             dpkg-deb: tests/install.rs builds the Debian package
#                    (scripts/deb.sh) and unpacks it into a scratch root
#   python3          cli/tests/doctor.rs parses `failstop doctor --json`
#   dwz              cli/tests/symbolize.rs splits a debug file as Debian's
#                    -dbgsym packages are (a supplementary file)
#   pkgconf          pkg-config: tests/install.rs builds with the README's lines
#   redis-server     /usr/bin/redis-server: preload/tests/preload_servers.rs,
#   redis-tools      /usr/bin/redis-cli, redis-benchmark: a third-party
#                    event-loop server under LD_PRELOAD, and its own clients
#                    (in the foreground and daemonized)
#   nginx-light      /usr/sbin/nginx: preload/tests/preload_workers.rs, a
#                    master that forks its workers, under LD_PRELOAD (the
#                    package starts no server where services are not
#                    started, as in CI's container; elsewhere it starts one
#                    on port 80, which the tests do not use)
#   runit            runsv, sv: tests/supervisor.rs (a real supervisor restarts
#                    the service after each fail-stop; the package starts no
#                    daemon)
#   util-linux       unshare: tests/evidence.rs (no /proc) and PID 1 of a PID
#                    namespace (tests/fail_stop.rs, cli/tests/doctor.rs)
#   strace           a tracer that comes and goes (tests/fail_stop.rs)
#   keepalived       a real cluster manager (VRRP) moves a service's address
#                    when failstop fail-stops it (tests/keepalived.rs runs
#                    its own; the package's service does not start without
#                    /etc/keepalived/keepalived.conf)
#   iproute2         ip: that test's network namespaces, bridge and veths
#   e2fsprogs        mkfs.ext4: tests/unkillable.rs freezes a small ext4 file
#   mount            system on a loop device (mount, umount) with fsfreeze
#                    (util-linux), so that a watched thread's write sleeps
#                    uninterruptibly; tests/pacemaker.rs too (losetup)
#   corosync         a real cluster with fencing: tests/pacemaker.rs runs
#   pacemaker        corosync 3 (knet) and Pacemaker 2.1 on two nodes, each
#   pacemaker-cli-utils  a network and a mount namespace of its own (the
#                    packages' services are not started: the test starts
#                    its own in the foreground), configured with
#                    crm_attribute, cibadmin and crm_resource, watched with
#                    crm_mon; stonith_admin lists its fence agent
#   resource-agents  ocf:heartbeat:anything (the service) and IPaddr2 (its
#                    address), for that test
#   procps           ps: the start-up grace of that test's monitor hook
#                    (util-linux above also has its nsenter: commands in a
#                    node)
#
# It also raises two kernel limits (root) for the test that registers a
# thread in every one of failstop's 65,536 slots.
#
# Missing packages are installed with apt-get, which needs root; otherwise
# the script stops and names them. The tests never skip a case for a
# missing tool: they fail and say what to install.
#
# Usage: scripts/test.sh [ARGS...]   ARGS go to `cargo test --workspace`
#                                    (e.g. a test name, or -- --nocapture)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# What the tests run, and the Debian package that has it.
#   <package> <file that must exist, or a command to find on PATH>
requirements=(
    "gcc cc"
    "libc6-dev /usr/include/stdio.h"
    "binutils nm"
    "binutils readelf"
    "binutils strip"
    "binutils objdump"
    "dpkg dpkg-deb"
    "python3 python3"
    "dwz dwz"
    "pkgconf pkg-config"
    "redis-server /usr/bin/redis-server"
    "redis-tools /usr/bin/redis-cli"
    "redis-tools /usr/bin/redis-benchmark"
    "nginx-light /usr/sbin/nginx"
    "runit runsv"
    "runit sv"
    "util-linux unshare"
    "strace strace"
    "keepalived /usr/sbin/keepalived"
    "iproute2 ip"
    "e2fsprogs /usr/sbin/mkfs.ext4"
    "mount mount"
    "mount umount"
    "util-linux /usr/sbin/fsfreeze"
    "util-linux nsenter"
    "mount losetup"
    "corosync /usr/sbin/corosync"
    "pacemaker /usr/sbin/pacemakerd"
    "pacemaker-cli-utils /usr/sbin/crm_resource"
    "pacemaker-cli-utils /usr/sbin/stonith_admin"
    "resource-agents /usr/lib/ocf/resource.d/heartbeat/anything"
    "resource-agents /usr/lib/ocf/resource.d/heartbeat/IPaddr2"
    "procps ps"
)

missing_packages() {
    local req package what missing=()
    for req in "${requirements[@]}"; do
        read -r package what <<<"$req"
        if [[ "$what" == /* ]]; then
            [ -e "$what" ] && continue
        else
            command -v "$what" >/dev/null && continue
        fi
        [[ " ${missing[*]-} " == *" $package "* ]] || missing+=("$package")
    done
    echo "${missing[*]-}"
}

missing="$(missing_packages)"
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "scripts/test.sh: the tests need these Debian packages, which are not installed: $missing" >&2
        echo "scripts/test.sh: install them as root (apt-get install $missing), or run this script as root" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null; then
        echo "scripts/test.sh: the tests need the Debian packages $missing (or their equivalents), and there is no apt-get here" >&2
        exit 1
    fi
    echo "== scripts/test.sh: installing the Debian packages the tests use: $missing"
    apt-get update
    # shellcheck disable=SC2086 # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
    still="$(missing_packages)"
    if [ -n "$still" ]; then
        echo "scripts/test.sh: still missing after apt-get install: $still" >&2
        exit 1
    fi
fi

# tests/scale.rs fills every one of failstop::MAX_THREADS (65,536) slots
# with a thread of its own: the kernel must allow that many threads (a pid
# each) and their maps (four per Rust thread: its stack, its signal stack
# and their guard pages). Raised as root; otherwise
# named.
raise_sysctl() {
    local key="$1" want="$2" file="/proc/sys/${1//.//}" have
    have="$(cat "$file")"
    [ "$have" -ge "$want" ] && return 0
    if [ "$(id -u)" = 0 ] && echo "$want" >"$file" 2>/dev/null; then
        echo "== scripts/test.sh: $key raised from $have to $want"
        return 0
    fi
    echo "scripts/test.sh: the tests need $key >= $want (it is $have): sysctl -w $key=$want as root" >&2
    exit 1
}
raise_sysctl kernel.pid_max 4194304
raise_sysctl vm.max_map_count 1048576

echo "== scripts/test.sh: cargo test --workspace $*"
exec cargo test --workspace "$@"
