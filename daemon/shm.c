/* shm.c — (being written) */
#include "internal.h"
