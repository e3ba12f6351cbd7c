/* ctl_breaker.c — (being written) */
#include "internal.h"
