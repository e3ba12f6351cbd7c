/* ctl_rate.c — (being written) */
#include "internal.h"
