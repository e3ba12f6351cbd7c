#!/usr/bin/env bash
# man_pages.sh BUILD_DIR — the manual pages: each built page is clean under `man --warnings -l`
# (no output at all), libprot(3) names every PROT_API function and every PROT_E code of
# include/prot.h, and protd.ini(5) names every option that `protd --check-config` accepts in
# examples/protd.ini (the page itself is generated from the parser's tables).
set -u
src=$(cd "$(dirname "$0")/../.." && pwd)
b=${1:?usage: man_pages.sh BUILD_DIR}
rc=0
for page in protd.8 protctl.1 libprot.3 protd.ini.5 prot-json.7 prot-control.7; do
	f=$b/man/$page
	[ -s "$f" ] || { echo "FAIL: $f was not built"; rc=1; continue; }
	w=$(MANWIDTH=80 man --warnings -l "$f" 2>&1 >/dev/null)
	[ -z "$w" ] || { echo "FAIL: man --warnings $page:"; echo "$w"; rc=1; }
done
names=$(tr '\n' ' ' <"$src/include/prot.h" | grep -o 'PROT_API [^;(]*(' | grep -o 'prot_[a-z0-9_]*($' | tr -d '(' | sort -u)
codes=$(grep -o '^\s*PROT_E[A-Z_]* = [0-9]*' "$src/include/prot.h" | awk '{print $1}')
for n in $names $codes; do
	grep -q "$n\b" "$src/man/libprot.3.scd" || { echo "FAIL: libprot(3) does not document $n"; rc=1; }
done
# every option name used in the example INI appears in protd.ini(5)
for o in $(sed -n 's/^;\? *\([a-z_]*\) *=.*/\1/p' "$src/examples/protd.ini" | sort -u); do
	has() { grep -q "^\\\\fB$1\\\\fR" "$b/man/protd.ini.5"; }
	has "$o" || { [ "${o#breaker_}${o#pool_}" != "$o$o" ] && has "${o#*_}"; } ||
		{ echo "FAIL: protd.ini(5) lacks option $o"; rc=1; }
done
[ $rc -eq 0 ] && echo "ok: 6 pages clean under man --warnings; libprot(3) names $(echo $names | wc -w) functions and $(echo $codes | wc -w) codes"
exit $rc
