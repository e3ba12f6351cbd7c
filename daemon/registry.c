/* registry.c — (being written) */
#include "internal.h"
