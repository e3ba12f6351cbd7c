/* ctl_breaker.c — (being written) */
#include "ctl.h"
