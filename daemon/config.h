/* config.h — protd's configuration: the INI file parsed into plain C structs that map 1:1 onto the
 * cfg blocks of lib/layout.h, plus the single-value validator the control socket shares with the
 * INI parser (same parser, same messages). The one interface of the config module to the rest of
 * protd (and to protd-ini-doc and fuzz_ini); its files, each saying what it owns:
 *   config.c         the objects in memory: defaults, copy, add, find, remove, derived defaults
 *   config_schema.c  the option tables and every other set of names (option reference: its top)
 *   config_value.c   one value: parse and range-check it, format it back
 *   config_check.c   the whole-config checks before a swap, the segment size, the error list
 *   config_inline.c  where a key's breaker_* / pool_* options go (INI and control socket alike)
 *   config_ini.c     the INI reader (config_load), FILE:LINE messages
 * config_schema.h is the module's own: the option type the files above share.
 */
#ifndef PROTD_CONFIG_H
#define PROTD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "internal.h"

#define CFG_ERR_MAX 256  /* one message */
#define CFG_PATH_MAX 108 /* sun_path */

enum cfg_kind { CFG_SEGMENT, CFG_DAEMON, CFG_REDIS, CFG_KEY, CFG_BREAKER, CFG_POOL, CFG_KIND_COUNT_ };

/* Where an object came from: the INI file (re-applied, and removed, by every reload) or the control
 * socket (kept by reloads unless the INI defines the same name). */
enum { CFG_ORIGIN_INI = 0, CFG_ORIGIN_RUNTIME = 1 };

struct cfg_obj {
	char name[PROT_NAME_BYTES];
	int line;          /* line of the section header (0 for runtime objects) */
	uint64_t seen;     /* bit i: option i of the kind's table was given (duplicates, required) */
	int origin;        /* CFG_ORIGIN_* */
};

struct cfg_key {
	struct cfg_obj o;
	struct prot_key_cfg c;           /* breaker_index/pool_index are resolved when applied */
	char breaker[PROT_NAME_BYTES];   /* "" = none */
	char pool[PROT_NAME_BYTES];
};

struct cfg_breaker {
	struct cfg_obj o;
	struct prot_breaker_cfg c;
	bool inline_of_key;              /* made by breaker_* keys of [key NAME] */
};

struct cfg_pool {
	struct cfg_obj o;
	struct prot_pool_cfg c;
	bool inline_of_key;
};

struct cfg_segment {
	struct cfg_obj o;
	char name[64];
	uint32_t mode;
	bool has_group;
	gid_t gid;
	uint32_t huge_pages; /* enum seg_huge (lib/seg_place.c): the pages backing the segment */
	struct seg_geometry geo;
};

struct cfg_daemon {
	struct cfg_obj o;
	uint64_t tick_ms;
	uint64_t reclaim_ms;
	uint64_t rate_grace_ms;            /* expired rate buckets are freed this long after expiry */
	char control_socket[CFG_PATH_MAX]; /* "" = default */
	uint64_t max_segment_size;         /* bytes; a bigger segment is a config error */
};

/* [redis]: global limits (daemon/redis_sync.c). address "" = no Redis (and no global keys). */
struct cfg_redis {
	struct cfg_obj o;
	char address[CFG_PATH_MAX];        /* tcp://HOST:PORT or unix:/PATH */
	uint64_t connect_timeout_ms;
	uint64_t command_timeout_ms;
	char key_prefix[64];
	char password_file[CFG_PATH_MAX];  /* "" = no AUTH */
	uint64_t sync_interval_ms;
	uint64_t lease_ttl_ms;
	uint64_t hosts;                    /* hosts sharing the limits: the default local share */
	char host_id[PROT_NAME_BYTES + 64];/* "" = hostname:segment */
};

struct config {
	char file[256];
	struct cfg_segment seg;
	struct cfg_daemon daemon;
	struct cfg_redis redis;
	struct cfg_key *keys;
	size_t nkeys;
	struct cfg_breaker *breakers;
	size_t nbreakers;
	struct cfg_pool *pools;
	size_t npools;
};

/* Collected error messages, each "FILE:LINE: what is wrong" (or just the message for runtime
 * values). */
struct cfg_errors {
	char (*msg)[CFG_ERR_MAX];
	size_t n, cap;
};
void cfg_errors_add(struct cfg_errors *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cfg_errors_free(struct cfg_errors *e);

/* Fill *c with every default (no keys). */
void config_init(struct config *c);
void config_free(struct config *c);
/* Deep copy; 0 or -ENOMEM. */
int config_copy(struct config *dst, const struct config *src);

/* Parse FILE into *c (initialised here). Returns 0 when valid, else -1 with every error in *errs
 * (or -errno when the file cannot be opened, with a message in *errs too). Applies nothing. */
int config_load(const char *file, struct config *c, struct cfg_errors *errs);

/* Validate and store one value: option NAME of an object of KIND (the tables of config_schema.c;
 * breaker_* / pool_* options of a key go to the breaker/pool, see config_route()). Returns
 * 0, or -1 with the message (no file/line prefix) in errbuf. Marks the option as given (the INI
 * parser refuses a second value; the control socket overwrites). */
int config_set_value(enum cfg_kind kind, void *obj, const char *name, const char *value,
                     char errbuf[CFG_ERR_MAX]);

/* Which object a [key] option belongs to: CFG_KEY, or CFG_BREAKER/CFG_POOL for breaker_* / pool_*
 * (*sub is then the option without its prefix). 0, or -1 when no such option exists. */
int config_route(const char *name, enum cfg_kind *kind, const char **sub);
const char *config_kind_name(enum cfg_kind kind);
/* A valid object name (1..PROT_NAME_MAX printable bytes, no spaces, no '='): 0, or -1 with
 * "WHAT: ..." in err. */
int config_check_name(const char *what, const char *name, char err[CFG_ERR_MAX]);
/* Derived defaults (pool reclaim_interval from [daemon], rate_min_calls); idempotent. */
void config_finalize(struct config *c);

/* Cross-object checks (required values, references, capacities) over a whole config. Messages are
 * prefixed "FILE:LINE: " with the object's header line when it has one. Returns the number of
 * errors added. */
int config_check(const struct config *c, struct cfg_errors *errs);

/* Any kind of object. config_count: how many objects of KIND c holds (1 for [segment] and
 * [daemon]); config_object: the I-th (the only one for [segment] and [daemon]). For keys, breakers
 * and pools: config_find by name (NULL when absent), config_add appends one named NAME with its
 * defaults (NULL on -ENOMEM; the array may move). Every object starts with its struct cfg_obj. */
size_t config_count(const struct config *c, enum cfg_kind kind);
void *config_object(const struct config *c, enum cfg_kind kind, size_t i);
void *config_find(const struct config *c, enum cfg_kind kind, const char *name);
void *config_add(struct config *c, enum cfg_kind kind, const char *name);

/* The same by type. Lookups by name; NULL when absent. */
struct cfg_key *config_key(const struct config *c, const char *name);
struct cfg_breaker *config_breaker(const struct config *c, const char *name);
struct cfg_pool *config_pool(const struct config *c, const char *name);
/* Append a zero-defaulted object (defaults applied) named NAME; NULL on -ENOMEM. */
struct cfg_key *config_add_key(struct config *c, const char *name);
struct cfg_breaker *config_add_breaker(struct config *c, const char *name);
struct cfg_pool *config_add_pool(struct config *c, const char *name);
/* The breaker or pool (KIND) that key KI's breaker_* / pool_* options configure, made on first
 * use; NULL with the reason in ERR. The one inline-object rule (config_inline.c states it). */
void *config_inline_target(struct config *c, size_t ki, enum cfg_kind kind, int origin,
                           char err[CFG_ERR_MAX]);
/* Remove the breaker / pool at index i (order of the others kept). */
void config_del_breaker(struct config *c, size_t i);
void config_del_pool(struct config *c, size_t i);

/* Printable value of option NAME of OBJ ("" when it does not exist): for `set` replies. */
void config_get_value(enum cfg_kind kind, const void *obj, const char *name, char *buf, size_t n);
/* Names of the options of a kind, NULL-terminated (for documentation and diffs). */
const char *const *config_option_names(enum cfg_kind kind);

/* Default control socket path for a segment name. */
void config_default_control(const char *segname, char *buf, size_t n);

/* Bytes of the segment c's [segment] capacities make (the layout of lib/layout.h plus the rate
 * groups' summary bitmap protd appends): 0, or -PROT_ECAPACITY beyond what one segment can hold. */
int config_segment_size(const struct config *c, uint64_t *size);
/* "8.3 MiB" */
void config_fmt_size(char *buf, size_t n, uint64_t bytes);

#endif
