/* pool.c — (being written) */
#include "internal.h"
void pool_reclaim(struct prot_shm_header *h, uint64_t now_ns, uint64_t *reclaimed) { (void)h; (void)now_ns; *reclaimed = 0; }
void pool_local_free(prot_t *p) { (void)p; }
