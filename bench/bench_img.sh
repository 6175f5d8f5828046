#!/bin/sh
# Side-by-side figures for image building (one run, same files):
#   sha256 of a 1 GiB file: qqmgr's hash (OpenSSL EVP) vs sha256sum
#   download over loopback: qqmgr's cache download vs curl -o
# Usage: bench/bench_img.sh   (compiles two small drivers with cc -O2)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d /tmp/qq-bench-img.XXXXXX)
SRV=
trap '[ -n "$SRV" ] && kill $SRV 2>/dev/null; rm -rf "$T"' EXIT INT TERM
S=$ROOT/src
CF="-std=c17 -O2 -D_GNU_SOURCE"
cc $CF -o "$T/qq-sha256" "$ROOT/bench/qq_sha256.c" $S/infra/hash.c $S/base/err.c -lcrypto
cc $CF -o "$T/qq-fetch" "$ROOT/bench/qq_fetch.c" $S/infra/download.c $S/infra/hash.c \
   $S/base/err.c $S/base/sbuf.c -lcurl -lcrypto -lpthread
B=$T
head -c 1G /dev/urandom > "$T/big.bin"
cat "$T/big.bin" > /dev/null          # warm the page cache for both
t() { s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
for i in 1 2 3; do
  echo "sha256 1GiB  qqmgr: $(t "$B/qq-sha256" "$T/big.bin") s   sha256sum: $(t sha256sum "$T/big.bin") s"
done
SUM=$(sha256sum "$T/big.bin" | cut -d' ' -f1)
/usr/bin/python3 "$ROOT/tests/tools/http_server.py" "$T" > "$T/port" &
SRV=$!
while [ ! -s "$T/port" ]; do sleep 0.05; done
URL="http://127.0.0.1:$(cat "$T/port")/big.bin"
for i in 1 2 3; do
  rm -rf "$T/cache" "$T/curl.out"
  q=$(t "$B/qq-fetch" "$URL" "$SUM" "$T/cache")
  c=$(t curl -s -o "$T/curl.out" "$URL")
  rm -f "$T/curl.out"
  cs=$(t sh -c "curl -s -o '$T/curl.out' '$URL' && sync '$T/curl.out'")
  echo "download 1GiB loopback  qqmgr (sha256 + fdatasync): $q s   curl -o: $c s   curl -o + sync: $cs s"
done
