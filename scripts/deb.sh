#!/usr/bin/env bash
# Builds a Debian package of failstop with dpkg-deb: the C library with its
# SONAME links, the static library, the header, the pkg-config files, the
# LD_PRELOAD library and the `failstop` command, where Debian puts them:
#
#   /usr/lib/<multiarch>/libfailstop.so.VERSION, libfailstop.so.0, libfailstop.so, libfailstop.a
#   /usr/lib/<multiarch>/libfailstop_preload.so
#   /usr/lib/<multiarch>/pkgconfig/failstop.pc, failstop-static.pc
#   /usr/include/failstop.h
#   /usr/bin/failstop
#   /usr/share/doc/failstop/copyright
#
# (<multiarch> is x86_64-linux-gnu on amd64.) One package, `failstop`, for
# all of it: the library, its development files and the command.
#
# Usage: scripts/deb.sh [--profile release|debug] [--from DIR] [--out DIR]
#
#   --profile P   build in profile P (default release), as scripts/install.sh
#   --from DIR    do not build: package libfailstop.so, libfailstop.a,
#                 libfailstop_preload.so and failstop already in DIR
#   --out DIR     where the .deb goes (default target/debian); the script
#                 prints its path last
#
# The maintainer field is "$DEBFULLNAME <$DEBEMAIL>" when both are set.
# Needs dpkg-deb (dpkg), readelf, objdump and strip (binutils). Install it with
# `apt install ./target/debian/failstop_VERSION_ARCH.deb` (or dpkg -i).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() {
    echo "deb.sh: $*" >&2
    exit 2
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

profile=release
from=
out="${CARGO_TARGET_DIR:-$root/target}/debian"
while [ $# -gt 0 ]; do
    case "$1" in
    --profile | --from | --out)
        [ $# -ge 2 ] || die "$1 needs a value"
        case "$1" in
        --profile) profile="$2" ;;
        --from) from="$2" ;;
        --out) out="$2" ;;
        esac
        shift 2
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown argument '$1' (allowed: --profile release|debug, --from DIR, --out DIR, --help)" ;;
    esac
done
[ "$profile" = release ] || [ "$profile" = debug ] || die "--profile '$profile' is not allowed: release or debug"
for tool in dpkg-deb:dpkg dpkg:dpkg readelf:binutils objdump:binutils strip:binutils; do
    command -v "${tool%%:*}" >/dev/null || die "${tool%%:*} is needed: install the Debian package ${tool#*:}"
done

version="$(awk '/^\[/ { in_package = ($0 == "[package]") }
                in_package && /^version *= *"/ { gsub(/^version *= *"|".*$/, ""); print; exit }' "$root/Cargo.toml")"
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "no plain MAJOR.MINOR.PATCH version in $root/Cargo.toml (found '$version')"

arch="$(dpkg --print-architecture)"
if command -v dpkg-architecture >/dev/null; then
    multiarch="$(dpkg-architecture -qDEB_HOST_MULTIARCH)"
else
    case "$arch" in
    amd64) multiarch=x86_64-linux-gnu ;;
    arm64) multiarch=aarch64-linux-gnu ;;
    i386) multiarch=i386-linux-gnu ;;
    armhf) multiarch=arm-linux-gnueabihf ;;
    ppc64el) multiarch=powerpc64le-linux-gnu ;;
    s390x) multiarch=s390x-linux-gnu ;;
    riscv64) multiarch=riscv64-linux-gnu ;;
    *) die "no multiarch name known for architecture $arch (install dpkg-dev for dpkg-architecture)" ;;
    esac
fi

if [ -z "$from" ]; then
    if [ "$profile" = release ]; then
        (cd "$root" && cargo build -p failstop-ffi -p failstop-preload -p failstop-cli --release)
    else
        (cd "$root" && cargo build -p failstop-ffi -p failstop-preload -p failstop-cli)
    fi
    from="${CARGO_TARGET_DIR:-$root/target}/$profile"
fi

[ -d "$from" ] || die "--from '$from' is not a directory (allowed: a directory with libfailstop.so, libfailstop.a, libfailstop_preload.so and failstop)"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"
bash "$root/scripts/install.sh" --prefix /usr --libdir "lib/$multiarch" --destdir "$stage" --from "$from" >/dev/null

# As Debian's packages do (dh_strip): no debug information in the
# installed files, symbol tables kept (failstop's own frames in a dump
# still get function names; file:line needs the unstripped build).
strip --strip-debug "$stage/usr/lib/$multiarch/libfailstop.so.$version" "$stage/usr/lib/$multiarch/libfailstop_preload.so" \
    "$stage/usr/bin/failstop" "$stage/usr/lib/$multiarch/libfailstop.a"

doc="$stage/usr/share/doc/failstop"
install -d "$doc"
cat >"$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: failstop
Source: https://github.com/failstop/failstop

Files: *
Copyright: the failstop developers
License: MIT or Apache-2.0
 failstop is dual-licensed under the MIT license and the Apache License,
 version 2.0, at your option. On Debian systems the Apache License is in
 /usr/share/common-licenses/Apache-2.0.
COPYRIGHT
chmod 0644 "$doc/copyright"

# Depends: from the ELF files' DT_NEEDED entries and the newest glibc
# symbol version they use.
elves=("$stage/usr/lib/$multiarch/libfailstop.so.$version" "$stage/usr/lib/$multiarch/libfailstop_preload.so" "$stage/usr/bin/failstop")
needed="$(for f in "${elves[@]}"; do readelf -d "$f" | sed -n 's/.*Shared library: \[\(.*\)\]$/\1/p'; done | sort -u)"
glibc="$(for f in "${elves[@]}"; do objdump -T "$f"; done | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)"
depends=()
seen=
for lib in $needed; do
    case "$lib" in
    libc.so.6 | libm.so.6 | libdl.so.2 | librt.so.1 | libpthread.so.0 | libutil.so.1 | ld-linux*) dep="libc6 (>= $glibc)" ;;
    libgcc_s.so.1) dep="libgcc-s1" ;;
    *) die "no Debian package known for $lib (needed by the binaries); add it to scripts/deb.sh" ;;
    esac
    case "$seen" in
    *"|$dep|"*) ;;
    *)
        depends+=("$dep")
        seen="$seen|$dep|"
        ;;
    esac
done
depends_line="$(printf '%s, ' "${depends[@]}")"
depends_line="${depends_line%, }"

maintainer="failstop developers <failstop@invalid>"
if [ -n "${DEBFULLNAME:-}" ] && [ -n "${DEBEMAIL:-}" ]; then
    maintainer="$DEBFULLNAME <$DEBEMAIL>"
fi

install -d "$stage/DEBIAN"
installed_size="$(du -sk --exclude=DEBIAN "$stage" | cut -f1)"
cat >"$stage/DEBIAN/control" <<CONTROL
Package: failstop
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $depends_line
Section: devel
Priority: optional
Homepage: https://github.com/failstop/failstop
Description: turns thread lockups into clean fail-stops
 failstop catches threads that spin (CPU-time timers) or block (a monitor
 with /proc evidence); on a verdict it closes a heartbeat gate, dumps every
 thread and ends the process, so that a supervisor restarts it.
 .
 This package has the C library (libfailstop.so, libfailstop.a, failstop.h,
 pkg-config files), the LD_PRELOAD library for programs you cannot change
 (libfailstop_preload.so) and the failstop command: failstop run starts a
 program under the preload, failstop doctor checks a machine, failstop
 symbolize resolves a dump's raw frames.
CONTROL
# The shared library is in the loader's path: refresh its cache.
echo "activate-noawait ldconfig" >"$stage/DEBIAN/triggers"
(cd "$stage" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/triggers" "$stage/DEBIAN/md5sums"

install -d "$out"
deb="$out/failstop_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$stage" "$deb" >/dev/null
echo "$deb"
