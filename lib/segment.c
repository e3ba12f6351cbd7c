/* segment.c — (being written) */
#include "internal.h"
