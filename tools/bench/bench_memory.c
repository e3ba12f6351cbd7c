/* bench_memory.c — the memory figures: bytes per entity bucket (from the layout, the ABI), and the
 * segment size for examples/protd.ini and for 1M entities (from seg_layout, the function protd
 * sizes its segment with), plus the size of the segment this run used and of its rate table (the
 * floor row's region, bench_floor.c).
 */
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "internal.h"

#ifndef PROT_SOURCE_ROOT
#define PROT_SOURCE_ROOT "."
#endif

/* protd's defaults (daemon/config.c) for what an INI does not set. */
static const struct seg_geometry geo_default = {
	.max_keys = 64, .max_breakers = 64, .max_pools = 16, .pool_max_slots = 64,
	.pool_max_waiters = 128, .events = 1024, .rate_entities = 65536,
};

static int on_entry(void *user, const char *section, const char *name, const char *value)
{
	struct seg_geometry *g = user;
	static const struct {
		const char *name;
		size_t off;
	} fields[] = {
		{"max_keys", offsetof(struct seg_geometry, max_keys)},
		{"max_breakers", offsetof(struct seg_geometry, max_breakers)},
		{"max_pools", offsetof(struct seg_geometry, max_pools)},
		{"pool_max_slots", offsetof(struct seg_geometry, pool_max_slots)},
		{"pool_max_waiters", offsetof(struct seg_geometry, pool_max_waiters)},
		{"events", offsetof(struct seg_geometry, events)},
	};
	if (strcmp(section, "segment") != 0)
		return 1;
	if (strcmp(name, "rate_entities") == 0)
		g->rate_entities = strtoull(value, NULL, 10);
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
		if (strcmp(name, fields[i].name) == 0)
			*(uint32_t *)((char *)g + fields[i].off) = (uint32_t)strtoul(value, NULL, 10);
	return 1;
}

static uint64_t layout_size(const struct seg_geometry *g)
{
	size_t size = 0;
	return seg_layout(g, NULL, &size) == 0 ? size : 0;
}

uint64_t bench_rate_table_bytes(uint64_t rate_entities)
{
	static struct prot_shm_header h; /* only its region table is used */
	struct seg_geometry g = geo_default;
	size_t size = 0;
	g.rate_entities = rate_entities;
	if (seg_layout(&g, &h, &size) < 0)
		return 0;
	return (uint64_t)h.region[REG_RATE_GROUPS].count * h.region[REG_RATE_GROUPS].stride;
}

/* Entities land in their group at random and a group holds RATE_GROUP_SLOTS of them (an entity
 * lives in its one group or nowhere: lib/rate_table.c). With n entities in g groups a group's load
 * is Poisson(n/g): how many entities find their group full, and how many groups overflow. */
static void group_overflow(double n, double groups, double *lost, double *full_groups)
{
	double lam = n / groups, pmf = exp(-lam), tail = 0, excess = 0;
	for (int k = 1; k < 400; k++) {
		pmf *= lam / k;
		if (k > RATE_GROUP_SLOTS) {
			tail += pmf;
			excess += (k - RATE_GROUP_SLOTS) * pmf;
		}
	}
	*lost = excess * groups;
	*full_groups = tail * groups;
}

/* The smallest power-of-two table where n random entities all fit (expected overflowing groups
 * below 1%). */
static uint64_t entities_to_fit(double n)
{
	uint64_t groups = 1;
	while ((double)groups * RATE_GROUP_SLOTS < n) /* fewer could not hold them at all */
		groups <<= 1;
	for (;; groups <<= 1) {
		double lost, full;
		group_overflow(n, (double)groups, &lost, &full);
		if (full < 0.01)
			return groups * RATE_GROUP_SLOTS;
	}
}

void bench_memory(struct bench *b)
{
	struct seg_geometry g = geo_default;
	const char *path = PROT_SOURCE_ROOT "/examples/protd.ini";
	if (ini_parse(path, on_entry, &g) == 0) {
		b->seg_example = layout_size(&g);
		snprintf(b->seg_example_note, sizeof b->seg_example_note, "%llu entities",
		         (unsigned long long)g.rate_entities);
	} else {
		snprintf(b->seg_example_note, sizeof b->seg_example_note, "cannot read %s", path);
	}
	g = geo_default;
	g.rate_entities = 1000000;
	b->seg_1m = layout_size(&g);
	double full;
	group_overflow(1e6, 1048576.0 / RATE_GROUP_SLOTS, &b->lost_1m, &full);
	g.rate_entities = b->fit_1m = entities_to_fit(1e6);
	b->seg_1m_fit = layout_size(&g);
	struct prot_info info;
	if (b->prot && prot_get_info(b->prot, &info) == 0)
		b->seg_run = info.size;
}

double bench_bytes_per_entity(void)
{
	return sizeof(struct prot_rate_bucket) + (double)sizeof(struct prot_rate_group_hdr) / RATE_GROUP_SLOTS;
}
