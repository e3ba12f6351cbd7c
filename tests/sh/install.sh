#!/usr/bin/env bash
# install.sh BUILD_DIR — `meson install --destdir` of a build configured with the default prefix:
# the installed files are exactly tests/sh/install.list; libprot.so.1 has that SONAME and
# PROT_1.0 symbols; prot.pc gives -lprot; the installed Python package imports and opens a
# missing segment as prot.ENOSEG through the installed libprot.so.1; and `systemd-analyze verify`
# passes on the installed protd.service (its protd path pointed into the destdir).
set -u
src=$(cd "$(dirname "$0")/../.." && pwd)
b=$(cd "${1:?usage: install.sh BUILD_DIR}" && pwd)
d=$(mktemp -d /tmp/prot-install-XXXXXX)
trap 'rm -rf "$d"' EXIT
rc=0
meson install -C "$b" --destdir "$d" --no-rebuild >"$d.log" 2>&1 || { cat "$d.log"; rm -f "$d.log"; exit 1; }
rm -f "$d.log"
(cd "$d" && find . \( -type f -o -type l \) | sed 's|^\./||' | sort) >"$d/.files"
libdir=$(meson introspect "$b" --buildoptions | /usr/bin/python3 -c '
import json, sys
print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "libdir"))')
[ -n "$libdir" ] || { echo "FAIL: no libdir in meson introspect $b"; exit 1; }
patterns=$(grep -v '^#' "$src/tests/sh/install.list" | grep -v '^$' | sed "s|@LIBDIR@|$libdir|g")
for p in $patterns; do
	n=$(cd "$d" && for f in $p; do [ -e "$f" ] && echo "$f"; done | wc -l)
	[ "$n" -eq 1 ] || { echo "FAIL: $p: $n installed files (expected 1)"; rc=1; }
done
while read -r f; do
	[ "$f" = .files ] && continue
	m=0
	for p in $patterns; do
		# shellcheck disable=SC2053
		[[ $f == $p ]] && { m=1; break; }
	done
	[ $m -eq 1 ] || { echo "FAIL: installed but not in install.list: $f"; rc=1; }
done <"$d/.files"
lib=$(ls "$d"/usr/local/"$libdir"/libprot.so.1 2>/dev/null | head -1)
if [ -n "$lib" ]; then
	objdump -p "$lib" | grep -q 'SONAME *libprot.so.1$' || { echo "FAIL: SONAME of $lib"; rc=1; }
	objdump -T "$lib" | grep -q 'PROT_1.0 *prot_open$' || { echo "FAIL: prot_open is not PROT_1.0"; rc=1; }
	pcdir=$(dirname "$lib")/pkgconfig
	libs=$(PKG_CONFIG_PATH=$pcdir pkg-config --define-prefix --libs prot 2>&1)
	[[ $libs == *-lprot* ]] || { echo "FAIL: pkg-config --libs prot: $libs"; rc=1; }
	pyd=$(ls -d "$d"/usr/local/lib/python3*/dist-packages 2>/dev/null | head -1)
	out=$(cd / && PYTHONPATH=$pyd PROT_LIBRARY=$lib /usr/bin/python3 -c '
import prot
try:
    prot.open("/prot-install-check-none")
except prot.ENOSEG:
    print("ENOSEG")' 2>&1)
	[ "$out" = ENOSEG ] || { echo "FAIL: the installed Python package: $out"; rc=1; }
fi
unit=$d/usr/local/lib/systemd/system/protd.service
if command -v systemd-analyze >/dev/null && [ -f "$unit" ]; then
	mkdir -p "$d/verify"
	sed "s|/usr/local/bin/protd|$d/usr/local/bin/protd|g" "$unit" >"$d/verify/protd.service"
	out=$(cd "$d/verify" && MANPATH=$d/usr/local/share/man SYSTEMD_LOG_LEVEL=notice systemd-analyze verify protd.service 2>&1)
	[ $? -eq 0 ] && [ -z "$out" ] || { echo "FAIL: systemd-analyze verify protd.service:"; echo "$out"; rc=1; }
elif [ -f "$unit" ]; then
	echo "note: systemd-analyze not installed; unit not verified"
fi
[ $rc -eq 0 ] && echo "ok: $(($(wc -l <"$d/.files") - 1)) files installed as install.list says; SONAME, PROT_1.0, prot.pc, Python package, systemd-analyze verify"
exit $rc
