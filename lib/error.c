/* error.c — (being written) */
#include "internal.h"
