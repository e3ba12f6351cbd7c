/* ratelimit.c — (being written) */
#include "internal.h"
