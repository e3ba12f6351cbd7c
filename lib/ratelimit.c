/* ratelimit.c — (being written) */
#include "internal.h"
void rate_sweep(struct prot_shm_header *h, uint64_t now_ns, uint64_t *swept) { (void)h; (void)now_ns; *swept = 0; }
