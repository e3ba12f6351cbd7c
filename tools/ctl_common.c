/* ctl_common.c — (being written) */
#include "ctl.h"
