/* config.c — (being written) */
#include "internal.h"
