/* event.c — (being written) */
#include "internal.h"
