/* error.c — names for every error code libprot returns: its own PROT_E* and -errno.
 * Thread-safe: only static strings, never a shared buffer (strerror() may use one). */
#include <errno.h>
#include <string.h>

#include "internal.h"

static const char *const prot_msgs[PROT_EDISABLED + 1 - PROT_ENOSEG] = {
	[PROT_ENOSEG - PROT_ENOSEG] = "shared-memory segment not found: protd is not running, or uses another segment name",
	[PROT_EABI - PROT_ENOSEG] = "segment has another ABI version: protd and libprot are from different builds",
	[PROT_ESIZE - PROT_ENOSEG] = "segment size does not match the size recorded in its header",
	[PROT_ECORRUPT - PROT_ENOSEG] = "segment is foreign or corrupt (bad magic, header or table offsets)",
	[PROT_ERETIRED - PROT_ENOSEG] = "segment was retired by protd and no successor exists yet",
	[PROT_ENOKEY - PROT_ENOSEG] = "no such protection key",
	[PROT_ENOBREAKER - PROT_ENOSEG] = "no such circuit breaker",
	[PROT_ENOPOOL - PROT_ENOSEG] = "no such pool",
	[PROT_ERATELIMITED - PROT_ENOSEG] = "rate limit exceeded",
	[PROT_ECOST - PROT_ENOSEG] = "the cost can never fit within the rate limit",
	[PROT_ETABLEFULL - PROT_ENOSEG] = "rate bucket table is full and the key's policy is to deny",
	[PROT_EBLOWN - PROT_ENOSEG] = "circuit breaker is open: call rejected without running",
	[PROT_EFAILED - PROT_ENOSEG] = "the protected operation failed",
	[PROT_ECHECKOUT_TIMEOUT - PROT_ENOSEG] = "no pool connection became free within the checkout timeout",
	[PROT_EPOOLFULL - PROT_ENOSEG] = "pool is full (non-blocking checkout)",
	[PROT_ETIMEOUT - PROT_ENOSEG] = "the call overran its timeout",
	[PROT_ETOOLONG - PROT_ENOSEG] = "name or entity is longer than the documented maximum",
	[PROT_ECAPACITY - PROT_ENOSEG] = "a table of the segment is full, or the configured capacity is too large",
	[PROT_EEXIST - PROT_ENOSEG] = "the object exists already with other settings",
	[PROT_EINVAL_CONFIG - PROT_ENOSEG] = "configuration value refused by protd",
	[PROT_ECONNECTOR - PROT_ENOSEG] = "the pool connector failed to create a connection",
	[PROT_ESTALE - PROT_ENOSEG] = "token, lease or id refers to an object that has changed since",
	[PROT_ENOTCONNECTED - PROT_ENOSEG] = "protd's control socket is not reachable",
	[PROT_ETORN - PROT_ENOSEG] = "a configuration block was left half-written (protd repairs it at start)",
	[PROT_EDISABLED - PROT_ENOSEG] = "the circuit breaker is disabled until it is enabled again",
};

static const char *errno_msg(int e)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
	return strerrordesc_np(e);
#else
	switch (e) {
	case EPERM: return "Operation not permitted";
	case ENOENT: return "No such file or directory";
	case ESRCH: return "No such process";
	case EINTR: return "Interrupted system call";
	case EIO: return "Input/output error";
	case E2BIG: return "Argument list too long";
	case EAGAIN: return "Resource temporarily unavailable";
	case ENOMEM: return "Cannot allocate memory";
	case EACCES: return "Permission denied";
	case EBUSY: return "Device or resource busy";
	case EEXIST: return "File exists";
	case EINVAL: return "Invalid argument";
	case EMFILE: return "Too many open files";
	case ENOSPC: return "No space left on device";
	case ERANGE: return "Numerical result out of range";
	case ENAMETOOLONG: return "File name too long";
	case ENOSYS: return "Function not implemented";
	case ETIMEDOUT: return "Connection timed out";
	case ECONNREFUSED: return "Connection refused";
	case EOVERFLOW: return "Value too large for defined data type";
	default: return NULL;
	}
#endif
}

const char *prot_strerror(int err)
{
	long e = err < 0 ? -(long)err : err; /* long: -INT_MIN does not fit an int */
	const char *s = NULL;

	if (err == 0)
		return "success";
	if (e >= PROT_ENOSEG && e <= PROT_EDISABLED)
		s = prot_msgs[e - PROT_ENOSEG];
	else if (e > 0 && e < 4096)
		s = errno_msg((int)e);
	return s ? s : "unknown error";
}
