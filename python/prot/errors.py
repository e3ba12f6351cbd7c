"""errors.py — prot's error codes as Python exceptions. Every code of include/prot.h has a class
named after it (PROT_EBLOWN -> prot.EBLOWN), all subclasses of prot.ProtError; a -errno code is
prot.SystemError_, also an OSError with that errno. The message is libprot's prot_strerror(),
followed by protd's own message when there is one.
"""
import errno as _errno

from ._abi import lib

CODES = {
    "ENOSEG": 5000, "EABI": 5001, "ESIZE": 5002, "ECORRUPT": 5003, "ERETIRED": 5004,
    "ENOKEY": 5005, "ENOBREAKER": 5006, "ENOPOOL": 5007, "ERATELIMITED": 5008, "ECOST": 5009,
    "ETABLEFULL": 5010, "EBLOWN": 5011, "EFAILED": 5012, "ECHECKOUT_TIMEOUT": 5013,
    "EPOOLFULL": 5014, "ETIMEOUT": 5015, "ETOOLONG": 5016, "ECAPACITY": 5017, "EEXIST": 5018,
    "EINVAL_CONFIG": 5019, "ECONNECTOR": 5020, "ESTALE": 5021, "ENOTCONNECTED": 5022,
    "ETORN": 5023, "EDISABLED": 5024,
}


class ProtError(Exception):
    """A libprot call returned a negative code. .code is positive (5011, or an errno)."""
    code = 0

    def __init__(self, code, message=None, *, retry_after_ms=0, layer=0, result=None):
        self.code = code
        self.retry_after_ms = retry_after_ms  # ERATELIMITED: when to try again
        self.layer = layer                    # execute: the PROT_LAYER_* that refused or failed
        self.result = result                  # ETIMEOUT: what the function returned
        text = lib.prot_strerror(code).decode()
        super().__init__(f"{text}: {message}" if message else text)


class SystemError_(ProtError, OSError):
    """-errno from libprot (e.g. EACCES on the segment)."""

    def __init__(self, code, message=None, **kw):
        ProtError.__init__(self, code, message, **kw)
        self.errno = code
        self.strerror = _errno.errorcode.get(code, str(code))


_BY_CODE = {}
for _name, _code in CODES.items():
    _cls = type(_name, (ProtError,), {"code": _code, "__doc__": f"PROT_{_name} ({_code})"})
    globals()[_name] = _cls
    _BY_CODE[_code] = _cls
__all__ = ["ProtError", "SystemError_", "CODES", "error"] + list(CODES)


def error(rc, message=None, **kw):
    """The exception for a negative return code rc."""
    code = -rc if rc < 0 else rc
    cls = _BY_CODE.get(code)
    if cls is None:
        return SystemError_(code, message, **kw)
    return cls(code, message, **kw)
