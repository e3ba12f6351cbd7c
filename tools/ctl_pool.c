/* ctl_pool.c — (being written) */
#include "ctl.h"
