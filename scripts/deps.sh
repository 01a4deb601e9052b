#!/bin/sh
# Install the Debian 12 packages a make target needs (as root): only what is
# missing, with one 'apt-get update' first.
#   scripts/deps.sh build|demo|check|bench|fuzz
set -e
build="meson ninja-build pkg-config gcc libc6-dev libglib2.0-dev libjson-glib-dev zlib1g-dev libdeflate-dev
       liblzo2-dev libsnappy-dev libzstd-dev python3"
readers="python3-pytest python3-libkdumpfile python3-drgn gdb elfutils binutils valgrind crash
         makedumpfile socat"
linux="qemu-system-x86 busybox-static cpio linux-image-cloud-amd64 linux-image-cloud-amd64-dbg"
case "$1" in
build) want="$build" ;;
demo) want="$build $readers" ;;
check|bench) want="$build $readers $linux" ;;
fuzz) want="$build $readers clang libclang-rt-14-dev llvm" ;;
*) echo "usage: $0 build|demo|check|bench|fuzz" >&2; exit 2 ;;
esac
missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages:$missing (run as root to install them)" >&2
    exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends $missing
