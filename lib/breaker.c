/* breaker.c — (being written) */
#include "internal.h"
void breaker_tick(struct prot_shm_header *h, uint64_t now_ns) { (void)h; (void)now_ns; }
