#!/bin/sh
# Build the benchmark tools (stub_backend, loadgen) into a directory.
#
#	bench/build.sh [OUTDIR]		(default: bench/bin)
#
# Environment: CC (cc), CFLAGS (the project's strict warning set, -O2).
# Each program is one standalone C file; loadgen needs OpenSSL
# (Debian: libssl-dev).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/bin}
CC=${CC:-cc}
CFLAGS=${CFLAGS:-"-std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Wformat=2 \
-Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla -Werror"}

mkdir -p "$out"
# shellcheck disable=SC2086
$CC $CFLAGS -o "$out/stub_backend" "$here/stub_backend.c"
# shellcheck disable=SC2086
$CC $CFLAGS -o "$out/loadgen" "$here/loadgen.c" -lssl -lcrypto
echo "built $out/stub_backend $out/loadgen"
