/* fuzz_segment.c — libFuzzer harness for attaching to an untrusted segment and every read-only
 * view of it: prot_open(PROT_OPEN_RDONLY) and the status/list/info calls of libprot, then every
 * read-only protctl command (list, status [KEY], events, stats [KEY], metrics, rate show/top,
 * breaker show, pool show/list), in text and JSON, called as functions from protctl's tables.
 *
 * The segment: at start-up a real one is made as protd makes it (shm_setup + registry_apply with
 * keys, a breaker and a pool), filled by a read-write client (buckets, failures, a lease), and
 * snapshotted. Each input is XORed over that snapshot (a zero byte keeps the real value, so the
 * corpus starts from a valid segment and mutations flip header words, slot states, names, configs,
 * indices, bucket and event words) and attached afresh.
 *
 * Slot seqlock counters: readers give up on an odd one after 20 ms (PROT_ETORN), which would make
 * most inputs cost 20 ms; so by default the harness makes every slot counter even after the XOR,
 * (and the configuration generation) even after the XOR, and PROT_FUZZ_ODD_SEQ=1 keeps them as
 * fuzzed (slower; run it that way too).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ctl.h"
#include "protd.h"

static struct shm seg;
static uint8_t *base;       /* the snapshot inputs are XORed over */
static FILE *devnull;
static bool odd_seq;
static prot_t *filler;      /* the read-write client of fill(), kept open with its lease */
static prot_lease lease;

void plog(int level, const char *fmt, ...)
{
	(void)level, (void)fmt;
}

static void add_opt(struct config *c, enum cfg_kind kind, void *obj, const char *n, const char *v)
{
	char err[CFG_ERR_MAX];
	(void)c;
	if (config_set_value(kind, obj, n, v, err) < 0) {
		fprintf(stderr, "fuzz_segment: %s\n", err);
		abort();
	}
}

static void make_config(struct config *c)
{
	config_init(c);
	snprintf(c->seg.name, sizeof c->seg.name, "/prot-fuzz-seg-%d", (int)getpid());
	c->seg.geo = (struct seg_geometry){ .max_keys = 4, .max_breakers = 2, .max_pools = 2,
		                            .pool_max_slots = 4, .pool_max_waiters = 4, .events = 16,
		                            .rate_entities = 64 };
	struct cfg_breaker *b = config_add_breaker(c, "db");
	add_opt(c, CFG_BREAKER, b, "tolerance", "1");
	add_opt(c, CFG_BREAKER, b, "window", "10s");
	add_opt(c, CFG_BREAKER, b, "refresh", "1s");
	struct cfg_pool *pl = config_add_pool(c, "conns");
	add_opt(c, CFG_POOL, pl, "size", "2");
	struct cfg_key *k = config_add_key(c, "api");
	add_opt(c, CFG_KEY, k, "rate_limit", "5");
	add_opt(c, CFG_KEY, k, "rate_window", "1m");
	add_opt(c, CFG_KEY, k, "breaker", "db");
	add_opt(c, CFG_KEY, k, "pool", "conns");
	k = config_add_key(c, "fixed");
	add_opt(c, CFG_KEY, k, "rate_limit", "3");
	add_opt(c, CFG_KEY, k, "rate_window", "1h");
	add_opt(c, CFG_KEY, k, "rate_algorithm", "fixed_window");
}

static int fail_fn(void *arg)
{
	(void)arg;
	return -1;
}

/* What a busy segment holds: buckets of two keys, breaker failures, a held lease, events. */
static void fill(void)
{
	if (prot_open(seg.name, 0, &filler) < 0)
		abort();
	prot_t *p = filler;
	struct prot_rate_info info;
	const char *ents[] = { "user:1", "user:2", "a-rather-long-entity-name-beyond-sixteen-bytes" };
	for (int i = 0; i < 3; i++) {
		prot_rate_check_key(p, "api", ents[i], 1, &info);
		prot_rate_check_key(p, "fixed", ents[i], 2, &info);
	}
	int res;
	prot_breaker_execute(p, "db", fail_fn, NULL, &res);
	void *conn;
	prot_pool_checkout(p, "conns", 0, &lease, &conn); /* kept: a lease held by this process */
}

static void setup(void)
{
	struct config c, next;
	char err[512];
	make_config(&c);
	config_finalize(&c);
	if (shm_setup(&seg, &c, "/nonexistent/fuzz.sock", true, err, sizeof err) < 0 ||
	    registry_init(&seg) < 0 || config_copy(&next, &c) < 0 || registry_apply(&seg, &next, 0) < 0) {
		fprintf(stderr, "fuzz_segment: cannot make the segment: %s\n", err);
		abort();
	}
	shm_publish(&seg);
	config_free(&c);
	fill();
	base = malloc(seg.size);
	if (!base)
		abort();
	memcpy(base, seg.hdr, seg.size);
	devnull = fopen("/dev/null", "w");
	odd_seq = getenv("PROT_FUZZ_ODD_SEQ") != NULL;
}

static void cleanup(void) __attribute__((destructor));
static void cleanup(void)
{
	if (seg.hdr)
		shm_unlink(seg.name);
}

/* See the file comment: slot seqlock counters made even on a segment seg_validate accepts. */
static void even_seqs(struct prot_shm_header *h, size_t size)
{
	if (odd_seq || seg_validate(h, size) < 0)
		return;
	atomic_fetch_and(&h->config_gen, ~1ull); /* the same for the whole-change counter */
	static const int regs[] = { REG_KEYS, REG_BREAKERS, REG_POOLS };
	for (size_t r = 0; r < 3; r++)
		for (uint32_t i = 0; i < seg_count(h, regs[r]); i++) {
			struct prot_named *n = seg_entry(h, regs[r], i);
			atomic_fetch_and(&n->seq, ~1u);
		}
}

static int name_cb(const char *name, void *arg)
{
	char *dst = arg;
	if (!dst[0])
		snprintf(dst, PROT_NAME_BYTES, "%s", name);
	return 0;
}

static void library_views(prot_t *p, char *key, char *breaker, char *pool)
{
	struct prot_info in;
	struct prot_protection_status ps;
	struct prot_breaker_status bs;
	struct prot_pool_status pst;
	struct prot_rate_info ri;
	struct prot_rate_limit lim = { .algo = PROT_RATE_GCRA, .limit = 5, .window_ms = 60000 };
	prot_get_info(p, &in);
	prot_list_keys(p, name_cb, key);
	prot_list_breakers(p, name_cb, breaker);
	prot_list_pools(p, name_cb, pool);
	prot_get_protection_status(p, key, &ps);
	prot_get_protection_status(p, "api", &ps);
	prot_breaker_status(p, breaker, &bs);
	prot_pool_status(p, pool, &pst);
	prot_rate_status(p, "api", "user:1", &lim, &ri);
	prot_rate_status(p, key, "user:2", &lim, &ri);
}

/* One protctl command, as protctl.c's main would run it after attaching. */
static void run(const struct ctl_cmd *cmd, prot_t *p, int argc, char **argv)
{
	for (int json = 0; json < 2; json++) {
		struct ctl c = { .segment = seg.name, .json = json, .p = p, .out = devnull };
		cmd->fn(&c, argc, argv);
	}
}

static void protctl_views(prot_t *p, char *key, char *breaker, char *pool)
{
	const struct ctl_cmd *tables[] = { ctl_segment_cmds, ctl_stats_cmds, ctl_rate_cmds,
		                           ctl_breaker_cmds, ctl_pool_cmds };
	for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
		for (const struct ctl_cmd *cmd = tables[t]; cmd->object; cmd++) {
			if (cmd->write)
				continue;
			const char *verb = cmd->verb ? cmd->verb : cmd->object;
			char *name = t == 3 ? breaker : t == 4 ? pool : key;
			char *none[] = { (char *)verb, NULL };
			char *one[] = { (char *)verb, name, NULL };
			char *two[] = { (char *)verb, name, (char *)(strcmp(verb, "top") ? "user:1" : "3"), NULL };
			if (cmd->min_args == 0)
				run(cmd, p, 1, none); /* events without --follow: drains the ring once */
			if (cmd->max_args >= 1 && cmd->min_args <= 1 && strcmp(cmd->object, "events"))
				run(cmd, p, 2, one);
			if (cmd->max_args >= 2)
				run(cmd, p, 3, two);
		}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!base)
		setup();
	uint8_t *m = (uint8_t *)seg.hdr;
	memcpy(m, base, seg.size);
	for (size_t i = 0; i < size && i < seg.size; i++)
		m[i] ^= data[i];
	even_seqs(seg.hdr, seg.size);
	prot_t *p;
	if (prot_open(seg.name, PROT_OPEN_RDONLY, &p) < 0)
		return 0;
	char key[PROT_NAME_BYTES] = "", breaker[PROT_NAME_BYTES] = "", pool[PROT_NAME_BYTES] = "";
	library_views(p, key, breaker, pool);
	protctl_views(p, key, breaker, pool);
	prot_close(p);
	return 0;
}
