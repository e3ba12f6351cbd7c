/* ctl_rate.c — (being written) */
#include "ctl.h"
