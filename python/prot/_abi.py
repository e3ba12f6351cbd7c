"""_abi.py — the C ABI of libprot.so.1 as ctypes sees it: loading the library, the structures of
include/prot.h mirrored field by field, and the function prototypes.

The structures are copies of the header's: tests/python/test_layout.py compares every size and
offset here with what the C compiler says (python/layout.c), so a change to include/prot.h that
is not mirrored here fails the tests instead of corrupting memory.
"""
import ctypes
import ctypes.util
import os

NAME_MAX = 47
ENTITY_MAX = 64
REPLY_MAX = 65535  # PROT_REPLY_MAX: the longest reply of protd

u32, u64, i32, i64 = ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int32, ctypes.c_int64
c_int, c_uint, c_char_p, c_void_p = ctypes.c_int, ctypes.c_uint, ctypes.c_char_p, ctypes.c_void_p
NAME = ctypes.c_char * (NAME_MAX + 1)


class Info(ctypes.Structure):
    _fields_ = [("segment", ctypes.c_char * 64), ("abi_version", u32), ("size", u64),
                ("config_generation", u64), ("protd_pid", i32), ("protd_alive", c_int),
                ("heartbeat_age_ms", u64), ("retired", c_int), ("keys", u32), ("max_keys", u32),
                ("breakers", u32), ("max_breakers", u32), ("pools", u32), ("max_pools", u32),
                ("rate_buckets_used", u64), ("rate_buckets_max", u64)]


class RateLimit(ctypes.Structure):
    _fields_ = [("algo", u32), ("limit", u64), ("window_ms", u64), ("burst", u64)]


class RateInfo(ctypes.Structure):
    _fields_ = [("allowed", c_int), ("limit", u64), ("used", u64), ("remaining", u64),
                ("window_ms", u64), ("reset_after_ms", u64), ("retry_after_ms", u64)]


class RateStatus(ctypes.Structure):
    _fields_ = [("exists", c_int), ("algo", u32), ("info", RateInfo), ("expires_at_ms", u64),
                ("created_ms", u64), ("updated_ms", u64)]


class BreakerOpts(ctypes.Structure):
    _fields_ = [("strategy", u32), ("tolerance", u32), ("window_ms", u64), ("refresh_ms", u64),
                ("half_open_probes", u32), ("probe_timeout_ms", u64), ("slow_call_ms", u64),
                ("rate_threshold_pct", u32), ("rate_window_calls", u32), ("rate_min_calls", u32),
                ("heal", u32)]


class BreakerStatus(ctypes.Structure):
    _fields_ = [("name", NAME), ("state", u32), ("failures_in_window", u32),
                ("next_probe_ms", u64), ("calls", u64), ("successes", u64), ("failures", u64),
                ("rejections", u64), ("last_transition_ms_ago", u64), ("opts", BreakerOpts),
                ("probes_given_back", u64), ("admitted", u64)]


class Opaque3(ctypes.Structure):
    """prot_breaker_token and prot_lease: three opaque 64-bit words."""
    _fields_ = [("opaque", u64 * 3)]


CREATE_FN = ctypes.CFUNCTYPE(c_int, c_void_p, ctypes.POINTER(c_void_p))
DESTROY_FN = ctypes.CFUNCTYPE(None, c_void_p, c_void_p)
CHECK_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p)


class Connector(ctypes.Structure):
    _fields_ = [("create", CREATE_FN), ("destroy", DESTROY_FN), ("check", CHECK_FN),
                ("ctx", c_void_p)]


class PoolStatus(ctypes.Structure):
    _fields_ = [("name", NAME), ("size", u32), ("max_overflow", u32), ("in_use", u32),
                ("overflow_in_use", u32), ("waiting", u32), ("checkout_timeout_ms", u64),
                ("overflow_ttl_ms", u64), ("strategy", u32), ("checkouts", u64),
                ("timeouts", u64), ("reclaims", u64), ("high_water", u32),
                ("idle", u32), ("state", u32), ("min_idle", u32), ("idle_timeout_ms", u64),
                ("max_lifetime_ms", u64), ("leak_threshold_ms", u64),
                ("max_open", u32), ("open", u32)]


class CallOpts(ctypes.Structure):
    _fields_ = [("entity", c_char_p), ("operation", c_char_p), ("cost", u64),
                ("timeout_ms", i64), ("skip", c_uint)]


class Call(ctypes.Structure):
    _fields_ = [("conn", c_void_p), ("deadline_ns", u64), ("arg", c_void_p), ("key", c_char_p)]


class Detail(ctypes.Structure):
    _fields_ = [("layer", c_uint), ("retry_after_ms", u64), ("fn_result", c_int), ("key", NAME),
                ("message", ctypes.c_char * 256)]


class ProtectionStatus(ctypes.Structure):
    _fields_ = [("key", NAME), ("has_rate", c_int), ("has_breaker", c_int), ("has_pool", c_int),
                ("rate", RateLimit), ("rate_buckets", u64), ("rate_allowed", u64),
                ("rate_denied", u64), ("rate_table_full", u64), ("breaker", BreakerStatus),
                ("pool", PoolStatus), ("timeout_ms", u64), ("calls", u64), ("ok", u64),
                ("failed", u64), ("timeouts", u64)]


# name in prot.h -> ctypes structure (what the layout test compares)
STRUCTS = {
    "prot_info": Info, "prot_rate_limit": RateLimit, "prot_rate_info": RateInfo,
    "prot_rate_status": RateStatus,
    "prot_breaker_opts": BreakerOpts, "prot_breaker_status": BreakerStatus,
    "prot_breaker_token": Opaque3, "prot_lease": Opaque3, "prot_connector": Connector,
    "prot_pool_status": PoolStatus, "prot_call_opts": CallOpts, "prot_call": Call,
    "prot_detail": Detail, "prot_protection_status": ProtectionStatus,
}

INT_FN = ctypes.CFUNCTYPE(c_int, c_void_p)                       # int (*)(void *arg)
POOL_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p)            # int (*)(void *conn, void *arg)
CALL_FN = ctypes.CFUNCTYPE(c_int, ctypes.POINTER(Call))          # int (*)(const struct prot_call *)
NAME_FN = ctypes.CFUNCTYPE(c_int, c_char_p, c_void_p)            # int (*)(const char *, void *)

P = c_void_p  # prot_t *
_PROTOTYPES = {
    "prot_strerror": (c_char_p, [c_int]),
    "prot_open": (c_int, [c_char_p, c_uint, ctypes.POINTER(P)]),
    "prot_close": (None, [P]),
    "prot_get_info": (c_int, [P, ctypes.POINTER(Info)]),
    "prot_rate_check": (c_int, [P, c_char_p, c_char_p, u64, u64, ctypes.POINTER(RateInfo)]),
    "prot_rate_check_n": (c_int, [P, c_char_p, c_char_p, ctypes.POINTER(RateLimit), u64,
                                  ctypes.POINTER(RateInfo)]),
    "prot_rate_check_key": (c_int, [P, c_char_p, c_char_p, u64, ctypes.POINTER(RateInfo)]),
    "prot_rate_status": (c_int, [P, c_char_p, c_char_p, ctypes.POINTER(RateLimit),
                                 ctypes.POINTER(RateInfo)]),
    "prot_rate_check_bin": (c_int, [P, c_char_p, c_char_p, ctypes.c_size_t,
                                    ctypes.POINTER(RateLimit), u64, ctypes.POINTER(RateInfo)]),
    "prot_rate_status_bin": (c_int, [P, c_char_p, c_char_p, ctypes.c_size_t,
                                     ctypes.POINTER(RateLimit), ctypes.POINTER(RateStatus)]),
    "prot_rate_status_key": (c_int, [P, c_char_p, c_char_p, ctypes.c_size_t,
                                     ctypes.POINTER(RateStatus)]),
    "prot_rate_reset_bin": (c_int, [P, c_char_p, c_char_p, ctypes.c_size_t]),
    "prot_rate_reset": (c_int, [P, c_char_p, c_char_p]),
    "prot_rate_inc": (c_int, [P, c_char_p, c_char_p, ctypes.POINTER(RateLimit), u64,
                              ctypes.POINTER(u64)]),
    "prot_rate_get": (c_int, [P, c_char_p, c_char_p, ctypes.POINTER(RateLimit), ctypes.POINTER(u64)]),
    "prot_rate_set": (c_int, [P, c_char_p, c_char_p, ctypes.POINTER(RateLimit), u64,
                              ctypes.POINTER(u64)]),
    "prot_breaker_create": (c_int, [P, c_char_p, ctypes.POINTER(BreakerOpts)]),
    "prot_breaker_execute": (c_int, [P, c_char_p, INT_FN, c_void_p, ctypes.POINTER(c_int)]),
    "prot_breaker_allow": (c_int, [P, c_char_p, ctypes.POINTER(Opaque3)]),
    "prot_breaker_record": (c_int, [P, ctypes.POINTER(Opaque3), c_int, u64]),
    "prot_breaker_status": (c_int, [P, c_char_p, ctypes.POINTER(BreakerStatus)]),
    "prot_breaker_reset": (c_int, [P, c_char_p]),
    "prot_breaker_blow": (c_int, [P, c_char_p]),
    "prot_breaker_enable": (c_int, [P, c_char_p]),
    "prot_breaker_ask": (c_int, [P, c_char_p]),
    "prot_breaker_remove": (c_int, [P, c_char_p]),
    "prot_pool_register": (c_int, [P, c_char_p, ctypes.POINTER(Connector)]),
    "prot_pool_checkout": (c_int, [P, c_char_p, i64, ctypes.POINTER(Opaque3),
                                   ctypes.POINTER(c_void_p)]),
    "prot_pool_checkin": (c_int, [P, ctypes.POINTER(Opaque3), c_int]),
    "prot_pool_status": (c_int, [P, c_char_p, ctypes.POINTER(PoolStatus)]),
    "prot_execute": (c_int, [P, c_char_p, ctypes.POINTER(CallOpts), CALL_FN, c_void_p,
                             ctypes.POINTER(Detail)]),
    "prot_configure": (c_int, [P, c_char_p, c_char_p, ctypes.POINTER(Detail)]),
    "prot_configure_reply": (c_int, [P, c_char_p, c_char_p, ctypes.c_char_p, ctypes.c_size_t,
                                     ctypes.POINTER(ctypes.c_size_t)]),
    "prot_get_protection_status": (c_int, [P, c_char_p, ctypes.POINTER(ProtectionStatus)]),
    "prot_list_keys": (c_int, [P, NAME_FN, c_void_p]),
    "prot_list_breakers": (c_int, [P, NAME_FN, c_void_p]),
    "prot_list_pools": (c_int, [P, NAME_FN, c_void_p]),
}


def load():
    """libprot.so.1: $PROT_LIBRARY if set (a path), else the dynamic linker's search."""
    path = os.environ.get("PROT_LIBRARY") or ctypes.util.find_library("prot") or "libprot.so.1"
    lib = ctypes.CDLL(path, use_errno=False)
    for name, (res, args) in _PROTOTYPES.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    return lib


lib = load()
