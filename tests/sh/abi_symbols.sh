#!/usr/bin/env bash
# abi_symbols.sh BUILD_DIR — the ABI check: the dynamic symbols libprot.so.1 defines are exactly the
# functions include/prot.h declares PROT_API, each versioned PROT_1.0, and lib/libprot.map lists the
# same names. Prints what differs; exit 0 when all three lists agree.
set -u
src=$(cd "$(dirname "$0")/../.." && pwd)
lib=${1:?usage: abi_symbols.sh BUILD_DIR}/lib/libprot.so.1
[ -e "$lib" ] || { echo "FAIL: $lib does not exist" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# declarations: PROT_API <return type> [*]prot_NAME(
tr '\n' ' ' <"$src/include/prot.h" | grep -o 'PROT_API [^;(]*(' | grep -o 'prot_[a-z0-9_]*($' |
	tr -d '(' | sort -u >"$tmp/header"
# defined dynamic symbols with their version (objdump -T: ... VERSION NAME)
objdump -T "$lib" | awk '$2 ~ /g/ && $4 != "*UND*" && $NF ~ /^prot_/ { print $(NF-1), $NF }' |
	sort -u >"$tmp/dyn.v"
awk '{ print $2 }' "$tmp/dyn.v" | sort -u >"$tmp/dyn"
# everything global that is not a prot_ function (should be nothing but the version node)
objdump -T "$lib" | awk '$2 ~ /g/ && $4 != "*UND*" && $NF !~ /^prot_/ && $NF !~ /^PROT_1\.[0-9]+$/ { print $NF }' >"$tmp/extra"
sed -n 's/^\s*\(prot_[a-z0-9_]*\);$/\1/p' "$src/lib/libprot.map" | sort -u >"$tmp/map"
rc=0
if ! diff -u "$tmp/header" "$tmp/dyn" >"$tmp/d1"; then
	echo "FAIL: include/prot.h PROT_API functions (-) differ from libprot.so.1 exports (+):"; cat "$tmp/d1"; rc=1
fi
if ! diff -u "$tmp/header" "$tmp/map" >"$tmp/d2"; then
	echo "FAIL: include/prot.h (-) differs from lib/libprot.map (+):"; cat "$tmp/d2"; rc=1
fi
bad=$(awk '$1 !~ /^PROT_1\.[0-9]+$/' "$tmp/dyn.v")
[ -z "$bad" ] || { echo "FAIL: exports outside the PROT_1.x nodes:"; echo "$bad"; rc=1; }
[ -s "$tmp/extra" ] && { echo "FAIL: other global symbols exported:"; cat "$tmp/extra"; rc=1; }
n=$(wc -l <"$tmp/header")
[ "$n" -gt 0 ] || { echo "FAIL: no PROT_API declarations found in include/prot.h"; rc=1; }
[ $rc -eq 0 ] && echo "ok: $n functions, all in PROT_1.x nodes, header = exports = version script"
exit $rc
