"""test_layout.py — the ctypes mirror (python/prot/_abi.py) has the size and every field offset
that the C compiler gives include/prot.h's structures (python/layout.c prints them)."""
import os
import subprocess

from conftest import BUILD
from prot import _abi


def c_layout():
    exe = os.environ.get("PROT_LAYOUT", os.path.join(BUILD, "python", "prot-layout"))
    out = subprocess.run([exe], capture_output=True, text=True, timeout=10, check=True).stdout
    sizes, offsets = {}, {}
    for line in out.splitlines():
        kind, name, value = line.split()
        (sizes if kind == "struct" else offsets)[name] = int(value)
    return sizes, offsets


def test_every_struct_has_the_c_size_and_offsets():
    import ctypes
    sizes, offsets = c_layout()
    assert set(sizes) == set(_abi.STRUCTS), "structures mirrored vs printed by layout.c"
    for name, cls in _abi.STRUCTS.items():
        assert ctypes.sizeof(cls) == sizes[name], f"sizeof(struct {name})"
        c_fields = {k.split(".", 1)[1]: v for k, v in offsets.items() if k.split(".")[0] == name}
        py_fields = {f: getattr(cls, f).offset for f, _ in cls._fields_}
        assert py_fields == c_fields, f"fields and offsets of struct {name}"


def test_error_classes_match_libprot_names():
    import prot
    for name, code in prot.CODES.items():
        cls = getattr(prot, name)
        assert issubclass(cls, prot.ProtError) and cls.code == code
        text = _abi.lib.prot_strerror(-code).decode()
        assert text and "unknown" not in text.lower(), name
    e = prot.errors.error(-13)
    assert isinstance(e, OSError) and e.errno == 13
