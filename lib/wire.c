/* wire.c — the control protocol's machine forms (man/prot-control.7.scd), written and read by
 * this one file: protd writes reply records (daemon/control.c), libprot and protctl read them
 * (lib/control.c, tools/protctl/ctl_set.c); libprot writes the options of a breaker or a pool as
 * request words (lib/breaker.c, lib/pool_conn.c), which protd validates with the INI's parser.
 *
 * A record is one line: "TYPE name=value name=value ...". TYPE and names are [a-z_]; values are
 * any bytes, those outside '!'..'~' and '%' escaped as %XX, so a record never holds a space, a
 * newline or a NUL of its own values. A reply is read whole before it is parsed (lib/control.c),
 * and parsing is bounded by the reply's length and WIRE_FIELDS_MAX.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "wire.h"

/* ---- records ----------------------------------------------------------------------------------- */
static bool plain(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '%';
}

/* Append s to buf at *len, escaped when esc; false when it does not fit (n counts the NUL). */
static bool put(char *buf, size_t n, size_t *len, const char *s, bool esc)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *u = (const unsigned char *)s; *u; u++) {
		size_t need = !esc || plain(*u) ? 1 : 3;
		if (*len + need >= n)
			return false;
		if (need == 1) {
			buf[(*len)++] = (char)*u;
		} else {
			buf[(*len)++] = '%';
			buf[(*len)++] = hex[*u >> 4];
			buf[(*len)++] = hex[*u & 15];
		}
	}
	return true;
}

size_t wire_record_format(char *buf, size_t n, const struct wire_record *r)
{
	size_t len = 0;
	bool ok = n > 0 && put(buf, n, &len, r->type, false);
	for (size_t i = 0; ok && i < r->n && i < WIRE_FIELDS_MAX; i++) {
		if (!r->f[i].value)
			continue;
		ok = put(buf, n, &len, " ", false) && put(buf, n, &len, r->f[i].name, false) &&
		     put(buf, n, &len, "=", false) && put(buf, n, &len, r->f[i].value, true);
	}
	ok = ok && put(buf, n, &len, "\n", false);
	if (!ok) {
		if (n)
			buf[0] = '\0';
		return 0;
	}
	buf[len] = '\0';
	return len;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
	     : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* %XX in place; -1 for a broken escape. */
static int unescape(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (*s != '%') {
			*o++ = *s;
			continue;
		}
		int hi = hexval(s[1]), lo = hi < 0 ? -1 : hexval(s[2]);
		if (lo < 0)
			return -1;
		*o++ = (char)(hi << 4 | lo);
		s += 2;
	}
	*o = '\0';
	return 0;
}

static bool is_name(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && *s != '_')
			return false;
	return true;
}

int wire_record_parse(char *line, struct wire_record *r)
{
	char *save = NULL, *t = strtok_r(line, " ", &save);
	r->n = 0;
	if (!t || !is_name(t))
		return -1;
	r->type = t;
	while ((t = strtok_r(NULL, " ", &save))) {
		char *eq = strchr(t, '=');
		if (!eq)
			return -1;
		*eq = '\0';
		if (!is_name(t) || unescape(eq + 1) < 0)
			return -1;
		if (r->n < WIRE_FIELDS_MAX)
			r->f[r->n++] = (struct wire_field){ t, eq + 1 };
	}
	return 0;
}

const char *wire_get(const struct wire_record *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->f[i].name, name) == 0)
			return r->f[i].value;
	return NULL;
}

int wire_next(char **pos, struct wire_record *r)
{
	while (**pos) {
		char *line = *pos, *nl = strchr(line, '\n');
		if (nl) {
			*nl = '\0';
			*pos = nl + 1;
		} else {
			*pos = line + strlen(line);
		}
		if (wire_record_parse(line, r) == 0)
			return 1;
	}
	return 0;
}

/* ---- request words ----------------------------------------------------------------------------- */
/* How one member of a public options struct travels: its INI name and form. */
enum word_form { W_COUNT, W_MS, W_NAME };
enum { ANY_STRATEGY = 0 };

struct opt_word {
	const char *name;      /* the INI option (daemon/config_value.c validates it) */
	size_t off, size;      /* of the member: 4 or 8 bytes, unsigned */
	enum word_form form;
	enum prot_names names; /* W_NAME: the value's names */
	uint64_t strategy;     /* sent only for this breaker strategy (ANY_STRATEGY: always) */
	bool omit_zero;        /* 0 is "the INI's default": not sent */
};

#define M(st, f) offsetof(st, f), sizeof(((st *)0)->f)
#define BO(f) M(struct prot_breaker_opts, f)
#define PO(f) M(struct prot_pool_opts, f)

/* The options a strategy does not use are not sent: the INI requires tolerance and window for a
 * standard breaker, rate_threshold and rate_window_calls for a rate one, and refuses 0 for them. */
static const struct opt_word breaker_words[] = {
	{"strategy", BO(strategy), W_NAME, NAMES_BREAKER_STRATEGY, ANY_STRATEGY, false},
	{"tolerance", BO(tolerance), W_COUNT, 0, PROT_BREAKER_STANDARD, false},
	{"window", BO(window_ms), W_MS, 0, PROT_BREAKER_STANDARD, false},
	{"refresh", BO(refresh_ms), W_MS, 0, ANY_STRATEGY, false},
	{"half_open_probes", BO(half_open_probes), W_COUNT, 0, ANY_STRATEGY, false},
	{"probe_timeout", BO(probe_timeout_ms), W_MS, 0, ANY_STRATEGY, false},
	{"slow_call", BO(slow_call_ms), W_MS, 0, ANY_STRATEGY, false},
	{"rate_threshold", BO(rate_threshold_pct), W_COUNT, 0, PROT_BREAKER_RATE, false},
	{"rate_window_calls", BO(rate_window_calls), W_COUNT, 0, PROT_BREAKER_RATE, false},
	{"rate_min_calls", BO(rate_min_calls), W_COUNT, 0, PROT_BREAKER_RATE, true},
	{"heal", BO(heal), W_NAME, NAMES_BREAKER_HEAL, ANY_STRATEGY, false},
	{0},
};

static const struct opt_word pool_words[] = {
	{"size", PO(size), W_COUNT, 0, ANY_STRATEGY, false},
	{"max_overflow", PO(max_overflow), W_COUNT, 0, ANY_STRATEGY, false},
	{"checkout_timeout", PO(checkout_timeout_ms), W_MS, 0, ANY_STRATEGY, true},
	{"strategy", PO(strategy), W_NAME, NAMES_POOL_STRATEGY, ANY_STRATEGY, false},
	{"overflow_ttl", PO(overflow_ttl_ms), W_MS, 0, ANY_STRATEGY, false},
	{"reclaim_interval", PO(reclaim_interval_ms), W_MS, 0, ANY_STRATEGY, true},
	{"min_idle", PO(min_idle), W_COUNT, 0, ANY_STRATEGY, false},
	{"idle_timeout", PO(idle_timeout_ms), W_MS, 0, ANY_STRATEGY, false},
	{"max_lifetime", PO(max_lifetime_ms), W_MS, 0, ANY_STRATEGY, false},
	{"leak_threshold", PO(leak_threshold_ms), W_MS, 0, ANY_STRATEGY, false},
	{0},
};

static uint64_t member(const void *opts, const struct opt_word *w)
{
	const char *p = (const char *)opts + w->off;
	if (w->size == 4) {
		uint32_t v;
		memcpy(&v, p, sizeof v);
		return v;
	}
	uint64_t v;
	memcpy(&v, p, sizeof v);
	return v;
}

int wire_opts_words(enum wire_opts which, const void *opts, char *buf, size_t n, size_t len)
{
	const struct opt_word *words = which == WIRE_BREAKER_OPTS ? breaker_words : pool_words;
	/* a breaker's strategy decides which options are sent (0 reads as standard) */
	uint64_t strategy = 0;
	if (which == WIRE_BREAKER_OPTS)
		strategy = ((const struct prot_breaker_opts *)opts)->strategy == PROT_BREAKER_RATE
		         ? PROT_BREAKER_RATE : PROT_BREAKER_STANDARD;
	for (const struct opt_word *w = words; w->name; w++) {
		uint64_t v = member(opts, w);
		if ((w->strategy != ANY_STRATEGY && w->strategy != strategy) || (w->omit_zero && v == 0))
			continue;
		const char *name = w->form == W_NAME ? prot_name(w->names, v) : NULL;
		if (w->form == W_NAME && !name)
			return -EINVAL;
		int k = w->form == W_NAME ? snprintf(buf + len, n - len, " %s=%s", w->name, name)
		      : snprintf(buf + len, n - len, " %s=%" PRIu64 "%s", w->name, v, w->form == W_MS ? "ms" : "");
		if (k < 0 || (size_t)k >= n - len)
			return -PROT_ETOOLONG;
		len += (size_t)k;
	}
	return 0;
}
