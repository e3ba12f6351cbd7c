/* control.c — (being written) */
#include "internal.h"
