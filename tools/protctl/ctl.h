/* ctl.h — protctl's internal interface: the command table and what each object's verbs share.
 *
 * `protctl [--segment NAME] [--json] <object> <verb> [args]`. Each object file (ctl_rate.c,
 * ctl_breaker.c, ctl_pool.c, ...) exports a table of verbs; protctl.c dispatches from them.
 *
 * Exit codes (stable, documented in README and --help):
 *   0 success; 1 the object or entity does not exist / the operation was refused;
 *   2 usage error (bad arguments); 3 segment unavailable (missing, wrong ABI, wrong size, corrupt);
 *   4 permission denied; 5 protd unreachable (control socket).
 */
#ifndef PROT_CTL_H
#define PROT_CTL_H

#include <stdbool.h>
#include <stdio.h>

#include "internal.h"
#include "wire.h"

enum { CTL_OK = 0, CTL_ENOENT = 1, CTL_EUSAGE = 2, CTL_ESEGMENT = 3, CTL_EPERM = 4, CTL_ECONTROL = 5 };

struct ctl {
	const char *segment; /* as given, or NULL for the default */
	bool json;
	prot_t *p;           /* attached read-only, or read-write for verbs with .write set */
	FILE *out;           /* stdout */
};

typedef int (*ctl_fn)(struct ctl *c, int argc, char **argv); /* argv[0] is the verb */

struct ctl_cmd {
	const char *object; /* "rate", "breaker", "pool", ... ; NULL ends a table */
	const char *verb;   /* "show", "reset", ... */
	const char *args;   /* usage of the arguments, e.g. "KEY ENTITY" */
	const char *help;   /* one line */
	int min_args, max_args; /* after the verb */
	bool write;         /* needs a read-write mapping */
	ctl_fn fn;
};

extern const struct ctl_cmd ctl_rate_cmds[];
extern const struct ctl_cmd ctl_breaker_cmds[];
extern const struct ctl_cmd ctl_pool_cmds[];
/* Top-level commands (verb NULL: `protctl list`, `protctl status KEY`): object is the command. */
extern const struct ctl_cmd ctl_segment_cmds[]; /* list, status, events (ctl_segment.c) */
extern const struct ctl_cmd ctl_set_cmds[];     /* set (ctl_set.c) */
extern const struct ctl_cmd ctl_stats_cmds[];   /* stats, metrics (ctl_stats.c) */

extern const struct ctl_cmd ctl_top_cmds[];     /* top (ctl_top.c) */

/* ctl_stats.c: every live key's counters, read once (rate totals in one pass over the buckets). */
struct key_snapshot {
	char name[PROT_NAME_BYTES];
	uint32_t slot;
	uint64_t calls, ok, failed, timeouts, rate_allowed, rate_denied, rate_table_full, rate_evicted;
	uint64_t breaker_rejected, pool_timeouts, latency_sum_ns, count;
	uint64_t hist[PROT_HIST_BUCKETS]; /* cumulative */
};
/* *out (malloc'd, *n entries) or an exit code after printing the error. */
int ctl_keys_snapshot(struct ctl *c, struct key_snapshot **out, uint32_t *n);

/* ctl_global.c: global limits. status: the "global" member (JSON) or line; status KEY: the key's
 * "global" member or scope lines; metrics: the global gauges and counters (--json: "global"). */
void ctl_global_status(struct ctl *c);
void ctl_global_key(struct ctl *c, const char *key);
void ctl_global_metrics(struct ctl *c, const struct key_snapshot *ks, uint32_t n);

/* ctl_common.c */
/* Print an error "protctl: <object> <verb>: <what>" to stderr and return code. */
int ctl_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The error err of command cmd about its argument what = value (at most max bytes), naming both:
 * "rate show: entity 'x...' is longer than 64 bytes". Returns the exit code. */
int ctl_bad_arg(int err, const char *cmd, const char *what, const char *value, int max);
/* Map a libprot error to an exit code (PROT_ENOSEG -> CTL_ESEGMENT, -EACCES -> CTL_EPERM, ...). */
int ctl_code(int err);
/* Set by --json: ctl_fail also prints {"schema": N, "error": ..., "exit": N} on stdout. */
extern bool ctl_json_errors;
/* Open a JSON document: '{' and its "schema" member (PROT_JSON_SCHEMA), then a separator, so the
 * document's first member follows; spaced: the ", " / ": " style of list, status and events.
 * Every document protctl prints starts so (man/prot-json.7.scd lists each one's members). */
void ctl_json_open(FILE *f, bool spaced);
/* The JSON objects of one breaker and one pool (prot-json(7) "breaker", "pool"): what breaker
 * show and pool show print, and status KEY for the key's layers (ctl_breaker.c, ctl_pool.c). */
void ctl_breaker_json(FILE *f, const struct prot_breaker_status *st);
void ctl_pool_json(FILE *f, const struct prot_pool_status *st);
/* A string from the segment, made safe for a terminal (control characters, backslash and invalid
 * UTF-8 as \xNN / \\). Static storage, 8 results in rotation. */
const char *ctl_text(const char *s);
/* ctl_entity.c: a rate-limiter entity (any bytes) as text, escaped (\\ and \xNN), and an ENTITY
 * argument read back from that form: 0, -EINVAL (a stray backslash), -PROT_ETOOLONG. */
#define CTL_ENT_TEXT (4 * PROT_ENTITY_MAX + 1)
const char *ctl_ent_text(char out[CTL_ENT_TEXT], const void *ent, size_t len);
int ctl_ent_parse(const char *arg, unsigned char out[PROT_ENTITY_MAX], size_t *len);
/* JSON string with escaping (quotes included). */
void ctl_json_str(FILE *f, const char *s);
/* Human duration "1.5s", "250ms", "2m". */
const char *ctl_dur(char buf[32], uint64_t ms);

#endif
