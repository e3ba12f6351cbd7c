/* hash.c — (being written) */
#include "internal.h"
