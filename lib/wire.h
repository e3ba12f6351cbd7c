/* wire.h — the machine vocabulary that leaves a process (hidden): the control protocol's reply
 * records and request words (lib/wire.c), and the one table of names of enumerated values
 * (lib/names.c) that protd sends, protctl prints (text and --json) and the schemas document.
 * The protocol: man/prot-control.7.scd; protctl's JSON: man/prot-json.7.scd.
 */
#ifndef PROT_WIRE_H
#define PROT_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* The control protocol's version (ping's `protd protocol=N` record; prot-control(7)). */
#define PROT_WIRE_PROTOCOL 1
/* The version of protctl's JSON documents (their "schema" member; prot-json(7)). */
#define PROT_JSON_SCHEMA 1

/* ---- records (lib/wire.c) -------------------------------------------------------------------- */
/* One line of an `ok` reply: "TYPE name=value ...". TYPE and names are [a-z_]; a value's bytes
 * outside '!'..'~', and '%', travel as %XX. A reader skips types and fields it does not know. */
#define WIRE_FIELDS_MAX 12

struct wire_field {
	const char *name;
	const char *value; /* NULL: the field is left out (a value that does not exist) */
};

struct wire_record {
	const char *type;
	size_t n;
	struct wire_field f[WIRE_FIELDS_MAX];
};

/* The record as one line, '\n' included, into buf (n bytes): its length, or 0 when it does not
 * fit (then nothing is written: a reply never holds part of a record). */
PROT_HIDDEN size_t wire_record_format(char *buf, size_t n, const struct wire_record *r);
/* Parse one line (no '\n') in place: the fields point into line, values unescaped. 0, or -1 when
 * the line is not a record (then *r is unspecified). Fields beyond WIRE_FIELDS_MAX are dropped. */
PROT_HIDDEN int wire_record_parse(char *line, struct wire_record *r);
/* The value of field NAME, or NULL when the record has none. */
PROT_HIDDEN const char *wire_get(const struct wire_record *r, const char *name);
/* Walk the records of a reply body in place: *pos starts at body; 1 with the next record in *r, 0
 * at the end. Lines that are not records are skipped. */
PROT_HIDDEN int wire_next(char **pos, struct wire_record *r);

/* ---- request words: a public options struct as name=value words (lib/wire.c) ----------------- */
enum wire_opts { WIRE_BREAKER_OPTS, WIRE_POOL_OPTS, WIRE_NO_OPTS };
/* " name=value ..." for *opts (struct prot_breaker_opts or struct prot_pool_opts), with the option
 * names of the INI's [breaker] / [pool] section, appended to buf (n bytes, len used). 0, -EINVAL
 * for a value that has no name (an unknown strategy), -PROT_ETOOLONG when it does not fit. */
PROT_HIDDEN int wire_opts_words(enum wire_opts which, const void *opts, char *buf, size_t n, size_t len);
/* "VERB NAME[ options]" to protd (lib/control.c): the breaker and pool create / remove requests,
 * one path. The handle's gate, NAME (-EINVAL unless 1 byte or more without spaces or '=';
 * -PROT_ETOOLONG beyond PROT_NAME_MAX), the options of which (-EINVAL when opts is NULL; none
 * for WIRE_NO_OPTS); then prot_control's result. */
PROT_HIDDEN int prot_object_request(prot_t *p, const char *verb, const char *name, enum wire_opts which,
                                    const void *opts);

/* ---- names of enumerated values (lib/names.c) ------------------------------------------------- */
enum prot_names {
	NAMES_BREAKER_STATE,    /* enum prot_breaker_state */
	NAMES_BREAKER_STRATEGY, /* enum prot_breaker_strategy */
	NAMES_BREAKER_HEAL,     /* enum prot_breaker_heal */
	NAMES_POOL_STATE,       /* enum prot_pool_state */
	NAMES_POOL_STRATEGY,    /* prot_pool_status.strategy: 0 lifo, 1 fifo */
	NAMES_RATE_ALGORITHM,   /* enum prot_rate_algo */
	NAMES_RATE_ON_FULL,     /* RATE_FULL_* */
	NAMES_RATE_CLOCK,       /* RATE_CLOCK_* */
	NAMES_PROTD_STATE,      /* what protctl status says of protd (PROTD_*) */
	NAMES_RATE_SCOPE,       /* RATE_SCOPE_* */
	NAMES_GLOBAL_STATE,     /* RG_*: the host's global-limits state */
	NAMES_HUGE_PAGES,       /* [segment] huge_pages, a segment's pages (enum seg_huge) */
	NAMES_COUNT_
};
enum { PROTD_RUNNING, PROTD_NOT_RESPONDING, PROTD_DEAD, PROTD_STOPPED };

/* The name of VALUE in SET, or NULL when it has none. */
PROT_HIDDEN const char *prot_name(enum prot_names set, uint64_t value);
/* The value named NAME in SET: 0, or -1 when SET has no such name. */
PROT_HIDDEN int prot_name_value(enum prot_names set, const char *name, uint64_t *value);
/* prot_name, or "unknown" when VALUE has none: for showing what the segment holds. */
PROT_HIDDEN const char *prot_name_shown(enum prot_names set, uint64_t value);
/* What the schemas call the set ("breaker_state"), and its names in order of value, NULL-ended:
 * for the tests that compare them with the schemas. */
PROT_HIDDEN const char *prot_names_title(enum prot_names set);
PROT_HIDDEN const char *const *prot_names_list(enum prot_names set);

#endif
