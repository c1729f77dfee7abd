#!/usr/bin/env bash
# Installs failstop's C library, header and pkg-config files, and the
# LD_PRELOAD library:
#
#   PREFIX/lib/libfailstop.so.VERSION      the shared library (SONAME libfailstop.so.0)
#   PREFIX/lib/libfailstop.so.0         -> libfailstop.so.VERSION
#   PREFIX/lib/libfailstop.so           -> libfailstop.so.0
#   PREFIX/lib/libfailstop.a               the static library
#   PREFIX/lib/libfailstop_preload.so      LD_PRELOAD=PREFIX/lib/libfailstop_preload.so program
#   PREFIX/include/failstop.h
#   PREFIX/lib/pkgconfig/failstop.pc        cc app.c $(pkg-config --cflags --libs failstop)
#   PREFIX/lib/pkgconfig/failstop-static.pc cc app.c $(pkg-config --static --cflags --libs failstop-static)
#
# Usage: scripts/install.sh [--prefix DIR] [--profile release|debug] [--from DIR]
#
#   --prefix DIR   absolute installation prefix (default /usr/local); written
#                  into the .pc files
#   --profile P    build the libraries (`cargo build --lib -p failstop-ffi -p
#                  failstop-preload`) in profile P: release (default) or debug
#   --from DIR     do not build: install the libfailstop.so, libfailstop.a and
#                  libfailstop_preload.so already in DIR (e.g. target/debug)
#
# Run as root into /usr or /usr/local, it refreshes the loader cache
# (ldconfig); elsewhere, programs linked with the shared library need
# LD_LIBRARY_PATH=PREFIX/lib or -Wl,-rpath,PREFIX/lib.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() {
    echo "install.sh: $*" >&2
    exit 2
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

prefix=/usr/local
profile=release
from=
while [ $# -gt 0 ]; do
    case "$1" in
    --prefix | --profile | --from)
        [ $# -ge 2 ] || die "$1 needs a value"
        case "$1" in
        --prefix) prefix="$2" ;;
        --profile) profile="$2" ;;
        --from) from="$2" ;;
        esac
        shift 2
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown argument '$1' (allowed: --prefix DIR, --profile release|debug, --from DIR, --help)" ;;
    esac
done

# The prefix goes verbatim into the .pc files and a sed replacement: only
# characters that need no quoting in either.
[[ "$prefix" =~ ^/[A-Za-z0-9._/+,:=@-]*$ ]] ||
    die "--prefix '$prefix' is not allowed: an absolute path of letters, digits and . _ / + , : = @ - (no spaces)"
prefix="${prefix%/}"
[ -n "$prefix" ] || prefix=/
[ "$profile" = release ] || [ "$profile" = debug ] || die "--profile '$profile' is not allowed: release or debug"

version="$(awk '/^\[/ { in_package = ($0 == "[package]") }
                in_package && /^version *= *"/ { gsub(/^version *= *"|".*$/, ""); print; exit }' "$root/Cargo.toml")"
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "no plain MAJOR.MINOR.PATCH version in $root/Cargo.toml [package] (found '$version')"

if [ -z "$from" ]; then
    if [ "$profile" = release ]; then
        (cd "$root" && cargo build --lib -p failstop-ffi -p failstop-preload --release)
    else
        (cd "$root" && cargo build --lib -p failstop-ffi -p failstop-preload)
    fi
    from="${CARGO_TARGET_DIR:-$root/target}/$profile"
fi
so="$from/libfailstop.so"
archive="$from/libfailstop.a"
preload="$from/libfailstop_preload.so"
[ -f "$so" ] || die "$so not found (build it, or give --from the directory that has it)"
[ -f "$archive" ] || die "$archive not found (build it, or give --from the directory that has it)"
[ -f "$preload" ] || die "$preload not found (build it with cargo build -p failstop-preload, or give --from the directory that has it)"

command -v readelf >/dev/null || die "readelf (binutils) is needed to read the library's SONAME"
soname="$(readelf -d "$so" | sed -n 's/.*Library soname: \[\(.*\)\]$/\1/p')"
[[ "$soname" =~ ^libfailstop\.so\.[0-9]+$ ]] || die "$so has SONAME '$soname', expected libfailstop.so.N (see build.rs)"
real="libfailstop.so.$version"
[[ "$real" == "$soname".* ]] || die "the SONAME $soname does not match the version $version in Cargo.toml (see build.rs)"

libdir="${prefix%/}/lib"
includedir="${prefix%/}/include"
pcdir="$libdir/pkgconfig"
install -d "$libdir" "$includedir" "$pcdir"
install -m 0755 "$so" "$libdir/$real"
ln -sfn "$real" "$libdir/$soname"
ln -sfn "$soname" "$libdir/libfailstop.so"
install -m 0644 "$archive" "$libdir/libfailstop.a"
install -m 0755 "$preload" "$libdir/libfailstop_preload.so"
install -m 0644 "$root/include/failstop.h" "$includedir/failstop.h"
for pc in failstop failstop-static; do
    sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" "$root/scripts/$pc.pc.in" >"$pcdir/$pc.pc.tmp"
    chmod 0644 "$pcdir/$pc.pc.tmp"
    mv -f "$pcdir/$pc.pc.tmp" "$pcdir/$pc.pc"
done

echo "installed failstop $version into $prefix:"
for f in "$libdir/$real" "$libdir/$soname" "$libdir/libfailstop.so" "$libdir/libfailstop.a" "$libdir/libfailstop_preload.so" \
    "$includedir/failstop.h" "$pcdir/failstop.pc" "$pcdir/failstop-static.pc"; do
    echo "    $f"
done
if [ "$(id -u)" = 0 ] && { [ "$prefix" = /usr ] || [ "$prefix" = /usr/local ]; } && command -v ldconfig >/dev/null; then
    ldconfig
else
    echo "programs linked with -lfailstop find it at run time with LD_LIBRARY_PATH=$libdir (or link with -Wl,-rpath,$libdir)"
fi
