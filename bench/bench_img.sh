#!/bin/sh
# Side-by-side figures for image building (one run, same files, page cache warm):
#   sha256 of a 1 GiB file:     qqmgr's hash (OpenSSL EVP)       vs sha256sum
#   download 1 GiB over loopback: qqmgr's cache download (sha256 while
#                               streaming, verify, fdatasync, rename) vs curl -o
#                               (and curl -o + sync, the same durability)
#   base copy:                  qqmgr's copy (reflink / copy_file_range per
#                               data extent)                     vs cp --sparse=always
#   no-op rebuild of a built cloud-init image (without / with an env_hook)
# Usage: bench/bench_img.sh [QQMGR]   (QQMGR: default build/qqmgr; the small
# drivers are compiled here with cc -O2). Needs curl, qemu-img, bc.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
QQ=$(realpath "${1:-$ROOT/build/qqmgr}")
T=$(mktemp -d /tmp/qq-bench-img.XXXXXX)
SRV=
trap '[ -n "$SRV" ] && kill $SRV 2>/dev/null; rm -rf "$T"' EXIT INT TERM
S=$ROOT/src
CF="-std=c17 -O2 -D_GNU_SOURCE"
cc $CF -o "$T/qq-sha256" "$ROOT/bench/qq_sha256.c" $S/infra/hash.c $S/infra/dl.c $S/base/err.c
cc $CF -o "$T/qq-fetch" "$ROOT/bench/qq_fetch.c" $S/infra/download.c $S/infra/curl_dl.c $S/infra/dl.c $S/infra/hash.c \
   $S/base/err.c $S/base/sbuf.c -lpthread
cc $CF -o "$T/qq-copy" "$ROOT/bench/qq_copy.c" $S/infra/copy.c $S/base/err.c
t() { s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N); echo "$e - $s" | bc | sed 's/^\./0./'; }

head -c 1G /dev/urandom > "$T/big.bin"
cat "$T/big.bin" > /dev/null
echo "== sha256 of 1 GiB (s)"
for i in 1 2 3; do
  echo "qqmgr $(t "$T/qq-sha256" "$T/big.bin")   sha256sum $(t sha256sum "$T/big.bin")"
done

echo "== download 1 GiB over loopback (s)"
SUM=$(sha256sum "$T/big.bin" | cut -d' ' -f1)
/usr/bin/python3 "$ROOT/tests/tools/http_server.py" "$T" > "$T/port" &
SRV=$!
while [ ! -s "$T/port" ]; do sleep 0.05; done
URL="http://127.0.0.1:$(cat "$T/port")/big.bin"
for i in 1 2 3; do
  rm -rf "$T/cache" "$T/curl.out"; sync
  q=$(t "$T/qq-fetch" "$URL" "$SUM" "$T/cache")
  rm -rf "$T/cache"; sync
  c=$(t curl -s -o "$T/curl.out" "$URL")
  rm -f "$T/curl.out"; sync
  cs=$(t sh -c "curl -s -o '$T/curl.out' '$URL' && sync '$T/curl.out'")
  rm -f "$T/curl.out"
  echo "qqmgr $q   curl -o $c   curl -o + sync $cs"
done
kill $SRV; SRV=
rm -f "$T/big.bin"

echo "== base copy (s)"
# like a qcow2 base: 400 MiB of data, no holes
head -c 400M /dev/urandom > "$T/dense.img"
# like a raw base: 2 GiB with 300 MiB of data in 30 extents
truncate -s 2G "$T/sparse.img"
for k in $(seq 0 29); do
  dd if="$T/dense.img" of="$T/sparse.img" bs=1M count=10 skip=$((k * 10)) seek=$((k * 68)) conv=notrunc status=none
done
cat "$T/dense.img" "$T/sparse.img" > /dev/null
for f in dense sparse; do
  for i in 1 2 3; do
    rm -f "$T/q.out" "$T/c.out"; sync
    q=$(t "$T/qq-copy" "$T/$f.img" "$T/q.out")
    rm -f "$T/q.out"; sync
    c=$(t cp --sparse=always "$T/$f.img" "$T/c.out")
    echo "$f: qqmgr $q   cp --sparse=always $c   (allocated: cp $(du -k "$T/c.out" | cut -f1) KiB)"
  done
done
"$T/qq-copy" "$T/sparse.img" "$T/q.out" > /dev/null
echo "   qqmgr's copy allocated $(du -k "$T/q.out" | cut -f1) KiB; identical: $(cmp -s "$T/q.out" "$T/sparse.img" && echo yes || echo NO)"
rm -f "$T"/*.img "$T"/*.out

echo "== no-op rebuild of a built cloud-init image ($QQ)"
/usr/bin/python3 "$ROOT/bench/noop_rebuild.py" "$QQ" "$T/noop"
