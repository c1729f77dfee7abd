#!/usr/bin/env bash
# Installs failstop's C library, header and pkg-config files, the
# LD_PRELOAD library and the `failstop` command:
#
#   PREFIX/lib/libfailstop.so.VERSION      the shared library (SONAME libfailstop.so.0)
#   PREFIX/lib/libfailstop.so.0         -> libfailstop.so.VERSION
#   PREFIX/lib/libfailstop.so           -> libfailstop.so.0
#   PREFIX/lib/libfailstop.a               the static library
#   PREFIX/lib/libfailstop_preload.so      LD_PRELOAD=PREFIX/lib/libfailstop_preload.so program
#   PREFIX/include/failstop.h
#   PREFIX/lib/pkgconfig/failstop.pc        cc app.c $(pkg-config --cflags --libs failstop)
#   PREFIX/lib/pkgconfig/failstop-static.pc cc app.c $(pkg-config --static --cflags --libs failstop-static)
#   PREFIX/bin/failstop                     failstop run --cpu-budget 1s -- program (finds PREFIX/lib/libfailstop_preload.so)
#
# Usage: scripts/install.sh [--prefix DIR] [--profile release|debug] [--from DIR]
#                           [--libdir DIR] [--destdir DIR]
#
#   --prefix DIR   absolute installation prefix (default /usr/local); written
#                  into the .pc files
#   --profile P    build the libraries and the command (`cargo build -p
#                  failstop-ffi -p failstop-preload -p failstop-cli`) in
#                  profile P: release (default) or debug
#   --from DIR     do not build: install the libfailstop.so, libfailstop.a,
#                  libfailstop_preload.so and failstop already in DIR (e.g.
#                  target/debug)
#   --libdir DIR   the libraries' directory relative to the prefix (default
#                  lib; Debian's multiarch: lib/x86_64-linux-gnu); written into
#                  the .pc files. `failstop run` looks in PREFIX/lib/<multiarch>,
#                  PREFIX/lib64 and PREFIX/lib beside PREFIX/bin/failstop
#   --destdir DIR  stage the files under DIR (DIR/PREFIX/...), for a package
#                  (scripts/deb.sh); the .pc files still say PREFIX, and the
#                  loader cache is not refreshed
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
libdir_rel=lib
destdir=
while [ $# -gt 0 ]; do
    case "$1" in
    --prefix | --profile | --from | --libdir | --destdir)
        [ $# -ge 2 ] || die "$1 needs a value"
        case "$1" in
        --prefix) prefix="$2" ;;
        --profile) profile="$2" ;;
        --from) from="$2" ;;
        --libdir) libdir_rel="$2" ;;
        --destdir) destdir="$2" ;;
        esac
        shift 2
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown argument '$1' (allowed: --prefix DIR, --profile release|debug, --from DIR, --libdir DIR, --destdir DIR, --help)" ;;
    esac
done

# The prefix goes verbatim into the .pc files and a sed replacement: only
# characters that need no quoting in either.
[[ "$prefix" =~ ^/[A-Za-z0-9._/+,:=@-]*$ ]] ||
    die "--prefix '$prefix' is not allowed: an absolute path of letters, digits and . _ / + , : = @ - (no spaces)"
prefix="${prefix%/}"
[ -n "$prefix" ] || prefix=/
[ "$profile" = release ] || [ "$profile" = debug ] || die "--profile '$profile' is not allowed: release or debug"
[[ "$libdir_rel" =~ ^[A-Za-z0-9._+-]+(/[A-Za-z0-9._+-]+)*$ && ! "$libdir_rel" =~ (^|/)\.\.?(/|$) ]] ||
    die "--libdir '$libdir_rel' is not allowed: a relative path under the prefix (lib, lib64, lib/x86_64-linux-gnu), without . or .. parts"
if [ -n "$destdir" ]; then
    [[ "$destdir" == /* ]] || die "--destdir '$destdir' is not allowed: an absolute path"
    destdir="${destdir%/}"
fi

version="$(awk '/^\[/ { in_package = ($0 == "[package]") }
                in_package && /^version *= *"/ { gsub(/^version *= *"|".*$/, ""); print; exit }' "$root/Cargo.toml")"
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "no plain MAJOR.MINOR.PATCH version in $root/Cargo.toml [package] (found '$version')"

if [ -z "$from" ]; then
    if [ "$profile" = release ]; then
        (cd "$root" && cargo build -p failstop-ffi -p failstop-preload -p failstop-cli --release)
    else
        (cd "$root" && cargo build -p failstop-ffi -p failstop-preload -p failstop-cli)
    fi
    from="${CARGO_TARGET_DIR:-$root/target}/$profile"
fi
so="$from/libfailstop.so"
archive="$from/libfailstop.a"
preload="$from/libfailstop_preload.so"
command="$from/failstop"
[ -f "$so" ] || die "$so not found (build it, or give --from the directory that has it)"
[ -f "$archive" ] || die "$archive not found (build it, or give --from the directory that has it)"
[ -f "$preload" ] || die "$preload not found (build it with cargo build -p failstop-preload, or give --from the directory that has it)"
[ -f "$command" ] || die "$command not found (build it with cargo build -p failstop-cli, or give --from the directory that has it)"

command -v readelf >/dev/null || die "readelf (binutils) is needed to read the library's SONAME"
soname="$(readelf -d "$so" | sed -n 's/.*Library soname: \[\(.*\)\]$/\1/p')"
[[ "$soname" =~ ^libfailstop\.so\.[0-9]+$ ]] || die "$so has SONAME '$soname', expected libfailstop.so.N (see build.rs)"
real="libfailstop.so.$version"
[[ "$real" == "$soname".* ]] || die "the SONAME $soname does not match the version $version in Cargo.toml (see build.rs)"

# Where the files go (under --destdir when staging) and what they say.
libdir="$destdir${prefix%/}/$libdir_rel"
bindir="$destdir${prefix%/}/bin"
includedir="$destdir${prefix%/}/include"
pcdir="$libdir/pkgconfig"
install -d "$libdir" "$bindir" "$includedir" "$pcdir"
install -m 0755 "$so" "$libdir/$real"
ln -sfn "$real" "$libdir/$soname"
ln -sfn "$soname" "$libdir/libfailstop.so"
install -m 0644 "$archive" "$libdir/libfailstop.a"
install -m 0755 "$preload" "$libdir/libfailstop_preload.so"
install -m 0755 "$command" "$bindir/failstop"
install -m 0644 "$root/include/failstop.h" "$includedir/failstop.h"
for pc in failstop failstop-static; do
    sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" -e "s|@LIBDIR@|$libdir_rel|g" \
        "$root/scripts/$pc.pc.in" >"$pcdir/$pc.pc.tmp"
    chmod 0644 "$pcdir/$pc.pc.tmp"
    mv -f "$pcdir/$pc.pc.tmp" "$pcdir/$pc.pc"
done

echo "installed failstop $version into $destdir$prefix:"
for f in "$libdir/$real" "$libdir/$soname" "$libdir/libfailstop.so" "$libdir/libfailstop.a" "$libdir/libfailstop_preload.so" \
    "$includedir/failstop.h" "$pcdir/failstop.pc" "$pcdir/failstop-static.pc" "$bindir/failstop"; do
    echo "    $f"
done
case "$libdir_rel" in
lib | lib64 | lib/*-linux-*) ;;
*) echo "note: failstop run looks for its preload library in PREFIX/lib/<multiarch>, PREFIX/lib64 and PREFIX/lib; with --libdir $libdir_rel, give it --preload ${prefix%/}/$libdir_rel/libfailstop_preload.so" ;;
esac
if [ -n "$destdir" ]; then
    : # staged for a package: its installation refreshes the loader cache
elif [ "$(id -u)" = 0 ] && { [ "$prefix" = /usr ] || [ "$prefix" = /usr/local ]; } && command -v ldconfig >/dev/null; then
    ldconfig
else
    echo "programs linked with -lfailstop find it at run time with LD_LIBRARY_PATH=$libdir (or link with -Wl,-rpath,$libdir)"
fi
