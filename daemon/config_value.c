/* config_value.c — one value of one option: parsed from its text and range-checked into its object
 * (config_set_value, the validator the INI reader and the control socket's `set`, breaker-create
 * and pool-create share, so both give the same messages), and written back as text
 * (config_get_value: `set` replies, `protctl show`, and the defaults of protd.ini(5) through
 * protd-ini-doc). Also the checks of an object name and the "8.3 MiB" of a size in messages.
 * What an option is (type, place, range) comes from the tables of config_schema.c.
 */
#include "config_schema.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Leading unsigned decimal digits of s. 0 ok, -1 no digits, -2 overflow. *end after the digits. */
static int parse_digits(const char *s, uint64_t *v, const char **end)
{
	uint64_t x = 0;
	const char *p = s;
	if (!isdigit((unsigned char)*p))
		return -1;
	int over = 0;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (x > (UINT64_MAX - d) / 10)
			over = 1;
		else
			x = x * 10 + d;
	}
	*end = p;
	*v = x;
	return over ? -2 : 0;
}

static int fail(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, CFG_ERR_MAX, fmt, ap);
	va_end(ap);
	return -1;
}

static int parse_number(const struct opt *o, const char *v, uint64_t *out, char *err)
{
	const char *end;
	int r = parse_digits(v, out, &end);
	if (r == -1)
		return fail(err, "%s: \"%s\" is not a number", o->name, v);
	if (r == -2)
		return fail(err, "%s: %s overflows", o->name, v);
	if (o->type == T_PCT && *end == '%')
		end++;
	if (*end)
		return fail(err, "%s: \"%s\" is not a number", o->name, v);
	return 0;
}

/* A number followed by a unit: durations (in ms) and sizes (in bytes) differ only in this. */
struct unit_family {
	const char *what;                         /* "a duration (e.g. ...)": the form expected */
	const char *use;                          /* the units, for the message */
	bool blanks;                              /* blanks may come between number and unit */
	int (*cmp)(const char *, const char *);   /* strcmp, or strcasecmp: units in any case */
	struct {
		const char *unit;
		uint64_t mul;
	} units[8];                               /* ended by a NULL unit */
};

static const struct unit_family durations = {
	"duration (e.g. 500ms, 2s, 1m)", "ms, s, m or h", true, strcmp,
	{ { "", 1 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { NULL, 0 } },
};
static const struct unit_family sizes = {
	"size (e.g. 512MiB, 2GiB, 1048576)", "KiB, MiB or GiB", false, strcasecmp,
	{ { "", 1 }, { "k", 1ull << 10 }, { "kib", 1ull << 10 }, { "m", 1ull << 20 },
	  { "mib", 1ull << 20 }, { "g", 1ull << 30 }, { "gib", 1ull << 30 }, { NULL, 0 } },
};

static int parse_with_unit(const struct opt *o, const struct unit_family *f, const char *v,
                           uint64_t *out, char *err)
{
	const char *end;
	uint64_t n;
	int r = parse_digits(v, &n, &end);
	if (r == -1)
		return fail(err, "%s: \"%s\" is not a %s", o->name, v, f->what);
	if (r == -2)
		return fail(err, "%s: %s overflows", o->name, v);
	while (f->blanks && (*end == ' ' || *end == '\t'))
		end++;
	for (size_t i = 0; f->units[i].unit; i++) {
		if (f->cmp(end, f->units[i].unit) != 0)
			continue;
		if (n > UINT64_MAX / f->units[i].mul)
			return fail(err, "%s: %s overflows", o->name, v);
		*out = n * f->units[i].mul;
		return 0;
	}
	return fail(err, "%s: unknown unit \"%s\" in \"%s\" (use %s)", o->name, end, v, f->use);
}

static int parse_enum(const struct opt *o, const char *v, uint64_t *out, char *err)
{
	if (prot_name_value(*o->e, v, out) == 0)
		return 0;
	char list[128] = "";
	const char *const *names = prot_names_list(*o->e);
	for (size_t i = 0; names[i]; i++)
		snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? " | " : "", names[i]);
	return fail(err, "%s: \"%s\" is not one of %s", o->name, v, list);
}

int config_check_name(const char *what, const char *v, char err[CFG_ERR_MAX])
{
	size_t n = strlen(v);
	if (n == 0)
		return fail(err, "%s: empty name", what);
	if (n > PROT_NAME_MAX)
		return fail(err, "%s: name \"%s\" is longer than %d bytes", what, v, PROT_NAME_MAX);
	for (const char *p = v; *p; p++)
		if (!isgraph((unsigned char)*p) || *p == '=')
			return fail(err, "%s: name \"%s\" may hold only printable characters without "
			                 "spaces or '='", what, v);
	return 0;
}

static int parse_string(const struct opt *o, const char *v, char *dst, char *err)
{
	size_t n = strlen(v);
	switch (o->type) {
	case T_REF:
		if (config_check_name(o->name, v, err))
			return -1;
		break;
	case T_SEGNAME:
		if (v[0] != '/' || n < 2 || strchr(v + 1, '/') || n > 63)
			return fail(err, "%s: \"%s\" is not a shm name (\"/\" then 1 to 62 bytes, no other "
			                 "\"/\")", o->name, v);
		break;
	case T_STR: /* printable, no spaces */
		if (n >= o->size)
			return fail(err, "%s: \"%s\" is longer than %zu bytes", o->name, v, o->size - 1);
		for (const char *p = v; *p; p++)
			if (!isgraph((unsigned char)*p))
				return fail(err, "%s: \"%s\" may hold only printable characters without spaces",
				            o->name, v);
		break;
	case T_PATH:
		if (v[0] != '/' || n >= o->size)
			return fail(err, "%s: \"%s\" is not an absolute path shorter than %zu bytes",
			            o->name, v, o->size);
		break;
	default:
		break;
	}
	memcpy(dst, v, n + 1);
	return 0;
}

static int parse_group(const struct opt *o, const char *v, gid_t *gid, char *err)
{
	uint64_t n;
	const char *end;
	if (parse_digits(v, &n, &end) == 0 && !*end && n < UINT32_MAX) {
		*gid = (gid_t)n;
		return 0;
	}
	struct group gr, *res = NULL;
	char buf[4096];
	if (getgrnam_r(v, &gr, buf, sizeof buf, &res) != 0 || !res)
		return fail(err, "%s: unknown group \"%s\"", o->name, v);
	*gid = res->gr_gid;
	return 0;
}

static void store_int(void *dst, size_t size, uint64_t v)
{
	if (size == 8)
		memcpy(dst, &v, 8);
	else {
		uint32_t w = (uint32_t)v;
		memcpy(dst, &w, 4);
	}
}

static uint64_t load_int(const void *src, size_t size)
{
	if (size == 8) {
		uint64_t v;
		memcpy(&v, src, 8);
		return v;
	}
	uint32_t w;
	memcpy(&w, src, 4);
	return w;
}

/* Parse and range-check one value of option o into obj. */
static int set_opt(const struct opt *o, void *obj, const char *v, char *err)
{
	char *dst = (char *)obj + o->off;
	uint64_t n = 0;
	int r;
	if (!*v)
		return fail(err, "%s: empty value", o->name);
	switch (o->type) {
	case T_U64:
	case T_PCT:
		r = parse_number(o, v, &n, err);
		break;
	case T_DUR:
		r = parse_with_unit(o, &durations, v, &n, err);
		break;
	case T_SIZE:
		r = parse_with_unit(o, &sizes, v, &n, err);
		break;
	case T_ENUM:
		r = parse_enum(o, v, &n, err);
		break;
	case T_MODE: {
		char *end;
		errno = 0;
		unsigned long m = strtoul(v, &end, 8);
		if (*end || !isdigit((unsigned char)*v) || errno)
			return fail(err, "%s: \"%s\" is not an octal mode", o->name, v);
		if (m > 0777)
			return fail(err, "%s: %s is larger than 0777", o->name, v);
		if ((m & 0600) != 0600)
			return fail(err, "%s: %s must give the owner read and write (0600)", o->name, v);
		if (m & 0002)
			return fail(err, "%s: %s is world-writable: every local user could rewrite the "
			            "segment (at most 0660; give writers a group)", o->name, v);
		n = m;
		r = 0;
		break;
	}
	case T_GROUP: {
		struct cfg_segment *s = obj;
		if (parse_group(o, v, &s->gid, err))
			return -1;
		s->has_group = true;
		return 0;
	}
	default:
		return parse_string(o, v, dst, err);
	}
	if (r)
		return r;
	if (n < o->min)
		return fail(err, "%s: %s is smaller than the minimum %" PRIu64, o->name, v, o->min);
	if (o->max && n > o->max)
		return fail(err, "%s: %s is larger than the maximum %" PRIu64 "%s%s%s", o->name, v, o->max,
		            o->why_max ? " (" : "", o->why_max ? o->why_max : "", o->why_max ? ")" : "");
	store_int(dst, o->size, n);
	return 0;
}

int config_set_value(enum cfg_kind kind, void *obj, const char *name, const char *value,
                     char errbuf[CFG_ERR_MAX])
{
	int i = cfg_opt_index(kind, name);
	if (i < 0)
		return fail(errbuf, "unknown option \"%s\" for a %s", name, config_kind_name(kind));
	if (set_opt(cfg_opt(kind, i), obj, value, errbuf))
		return -1;
	((struct cfg_obj *)obj)->seen |= 1ull << i;
	return 0;
}

static void fmt_duration(char *buf, size_t n, uint64_t ms)
{
	if (ms && ms % 3600000 == 0)
		snprintf(buf, n, "%" PRIu64 "h", ms / 3600000);
	else if (ms && ms % 60000 == 0)
		snprintf(buf, n, "%" PRIu64 "m", ms / 60000);
	else if (ms && ms % 1000 == 0)
		snprintf(buf, n, "%" PRIu64 "s", ms / 1000);
	else
		snprintf(buf, n, "%" PRIu64 "ms", ms);
}

void config_get_value(enum cfg_kind kind, const void *obj, const char *name, char *buf, size_t n)
{
	int i = cfg_opt_index(kind, name);
	buf[0] = '\0';
	if (i < 0 || !obj)
		return;
	const struct opt *o = cfg_opt(kind, i);
	const char *src = (const char *)obj + o->off;
	uint64_t v = 0;
	if (o->type <= T_SIZE || o->type == T_MODE || o->type == T_GROUP)
		v = load_int(src, o->size);
	switch (o->type) {
	case T_U64:
		snprintf(buf, n, "%" PRIu64, v);
		break;
	case T_PCT:
		snprintf(buf, n, "%" PRIu64 "%%", v);
		break;
	case T_SIZE:
		snprintf(buf, n, "%" PRIu64, v);
		break;
	case T_DUR:
		fmt_duration(buf, n, v);
		break;
	case T_ENUM:
		snprintf(buf, n, "%s", prot_name(*o->e, v) ? prot_name(*o->e, v) : "");
		break;
	case T_MODE:
		snprintf(buf, n, "0%03" PRIo64, v);
		break;
	case T_GROUP:
		snprintf(buf, n, "%" PRIu64, v);
		break;
	default:
		snprintf(buf, n, "%s", *src ? src : "(none)");
		break;
	}
}

void config_fmt_size(char *buf, size_t n, uint64_t bytes)
{
	if (bytes >= (1ull << 30))
		snprintf(buf, n, "%.1f GiB", (double)bytes / (1ull << 30));
	else if (bytes >= MIB)
		snprintf(buf, n, "%.1f MiB", (double)bytes / MIB);
	else
		snprintf(buf, n, "%.1f KiB", (double)bytes / 1024);
}
