/* ctl_common.c — (being written) */
#include "internal.h"
