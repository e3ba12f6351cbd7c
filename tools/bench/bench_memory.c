/* bench_memory.c — the memory figures: bytes per entity bucket (from the layout, the ABI), and the
 * segment size for examples/protd.ini and for 1M entities (from seg_layout, the function protd
 * sizes its segment with), plus the size of the segment this run used and of its rate table (the
 * floor row's region, bench_floor.c).
 */
#include <ini.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "internal.h"
#include "rate_table.h"

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

/* How many of n uniformly hashed entities find both their groups full in a table of `groups`
 * groups (a power of two), placed by the table's own rule (lib/rate_table.h: rate_alt_of,
 * rate_prefer_secondary; lib/rate_table.c, TABLE): a simulation over occupancy counts with a
 * fixed-seed xorshift, so every run reports the same figure. -1: out of memory. */
static double place(uint64_t n, uint64_t groups, bool until_refused)
{
	uint8_t *occ = calloc(groups, 1);
	uint64_t x = 88172645463325252ull, lost = 0, k;

	if (!occ)
		return -1;
	for (k = 0; k < n && !(until_refused && lost); k++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint64_t p = x & (groups - 1), s = (p ^ rate_alt_of(x)) & (groups - 1);
		uint64_t first = s != p && rate_prefer_secondary(occ[p], occ[s]) ? s : p;
		uint64_t other = first == p ? s : p;
		if (occ[first] < RATE_GROUP_SLOTS)
			occ[first]++;
		else if (occ[other] < RATE_GROUP_SLOTS)
			occ[other]++;
		else
			lost++;
	}
	free(occ);
	return until_refused ? (double)(k - lost) : (double)lost;
}

static double placement_lost(uint64_t n, uint64_t groups)
{
	return place(n, groups, false);
}

double bench_bytes_at_first_refusal(void)
{
	const uint64_t groups = 1048576 / RATE_GROUP_SLOTS;
	double placed = place(groups * RATE_GROUP_SLOTS, groups, true); /* before the first refusal */
	return placed > 0 ? bench_bytes_per_entity() * (double)(groups * RATE_GROUP_SLOTS) / placed : NAN;
}

/* The smallest power-of-two table where n random entities all fit (the simulation loses none). */
static uint64_t entities_to_fit(double n)
{
	uint64_t groups = 1;
	while ((double)groups * RATE_GROUP_SLOTS < n) /* fewer could not hold them at all */
		groups <<= 1;
	for (; groups < (1ull << 26); groups <<= 1)
		if (placement_lost((uint64_t)n, groups) == 0)
			break;
	return groups * RATE_GROUP_SLOTS;
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
	b->lost_1m = placement_lost(1000000, 1048576 / RATE_GROUP_SLOTS);
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
