/* config_ini.c — the INI file: config_load() reads it with inih into a struct config, through the
 * value parser (config_value.c) and the inline-object rule (config_inline.c), then finalizes and
 * checks it (config_check.c). protd calls it at start-up, on SIGHUP and for --check-config
 * (main.c); tests/fuzz/fuzz_ini.c feeds it arbitrary bytes.
 *
 * Every mistake is reported as `FILE:LINE: what is wrong`, all of them for the whole file, and a
 * file with any mistake applies nothing. Mistakes in one value carry the line of that value;
 * missing values, conflicts, references and capacities carry the line of the section header.
 * The syntax and the options: the comment at the top of config_schema.c.
 *
 * inih (Debian's build) does not pass line numbers to the handler, and calls it only for
 * name=value lines. So the reader below counts lines, parses section headers itself (which also
 * gives empty sections and the header line of every object), and reports lines inih would reject,
 * handing inih an empty line instead: every mistake of the file is collected, not the first.
 */
#include "config_schema.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <ini.h>

struct parse {
	struct config *c;
	struct cfg_errors *e;
	FILE *f;
	int line, next_line;
	enum cfg_kind kind;
	size_t index;     /* of the current key/breaker/pool */
	bool skip;        /* the current section is broken: its options are not checked */
	bool in_section;
};

#define PERR(ps, ...)                                                                          \
	do {                                                                                       \
		char m_[CFG_ERR_MAX];                                                              \
		snprintf(m_, sizeof m_, __VA_ARGS__);                                              \
		cfg_errors_add((ps)->e, "%s:%d: %s", (ps)->c->file, (ps)->line, m_);              \
	} while (0)

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* A second section for a singleton or a name: reports and returns true. */
static bool dup_section(struct parse *ps, const struct cfg_obj *o, const char *label)
{
	if (!o || !o->line)
		return false;
	PERR(ps, "duplicate section [%s] (first on line %d)", label, o->line);
	return true;
}

static void begin_named(struct parse *ps, enum cfg_kind kind, const char *name)
{
	char err[CFG_ERR_MAX], label[80];
	snprintf(label, sizeof label, "%s %s", config_kind_name(kind), name);
	if (config_check_name(label, name, err)) {
		PERR(ps, "%s", err);
		return;
	}
	struct config *c = ps->c;
	if (dup_section(ps, config_find(c, kind, name), label))
		return;
	struct cfg_obj *o = config_add(c, kind, name);
	if (!o) {
		PERR(ps, "[%s]: out of memory", label);
		return;
	}
	ps->index = config_count(c, kind) - 1;
	o->line = ps->line;
	ps->kind = kind;
	ps->skip = false;
}

static void begin_section(struct parse *ps, char *hdr)
{
	ps->skip = true;
	ps->in_section = true;
	char *sp = hdr + strcspn(hdr, " \t");
	char *name = trim(sp);
	*sp = '\0';
	for (int k = 0; k < CFG_KIND_COUNT_; k++) {
		if (strcmp(hdr, config_kind_name((enum cfg_kind)k)) != 0)
			continue;
		if (k < CFG_KEY) { /* [segment], [daemon], [redis]: one each, no name */
			struct cfg_obj *o = config_object(ps->c, (enum cfg_kind)k, 0);
			if (*name)
				PERR(ps, "section [%s] takes no name", hdr);
			else if (!dup_section(ps, o, hdr)) {
				o->line = ps->line;
				ps->kind = (enum cfg_kind)k;
				ps->skip = false;
			}
		} else if (!*name)
			PERR(ps, "section [%s] needs a name: [%s NAME]", hdr, hdr);
		else
			begin_named(ps, (enum cfg_kind)k, name);
		return;
	}
	PERR(ps, "unknown section [%s%s%s] (expected segment, daemon, redis, key, breaker or pool)", hdr,
	     *name ? " " : "", name);
}

static int on_value(void *user, const char *section, const char *name, const char *value)
{
	(void)section; /* tracked by the reader: inih truncates long section names */
	struct parse *ps = user;
	if (!ps->in_section) {
		PERR(ps, "\"%s\" outside of any section", name);
		return 1;
	}
	if (ps->skip)
		return 1;
	enum cfg_kind kind = ps->kind, rk;
	const char *sub = name, *rs;
	void *obj = config_object(ps->c, kind, ps->index);
	char label[80];
	snprintf(label, sizeof label, "%s%s%s", config_kind_name(kind), kind >= CFG_KEY ? " " : "",
	         kind >= CFG_KEY ? ((struct cfg_obj *)obj)->name : "");
	if (kind == CFG_KEY && config_route(name, &rk, &rs) == 0 && rk != CFG_KEY) {
		kind = rk;
		sub = rs;
		char why[CFG_ERR_MAX];
		obj = config_inline_target(ps->c, ps->index, rk, CFG_ORIGIN_INI, why);
		if (!obj) {
			PERR(ps, "%s", why);
			return 1;
		}
	}
	int i = cfg_opt_index(kind, sub);
	if (i < 0) {
		PERR(ps, "unknown option \"%s\" in [%s]", name, label);
		return 1;
	}
	struct cfg_obj *o = obj;
	if (o->seen >> i & 1) {
		PERR(ps, "duplicate option \"%s\" in this section", name);
		return 1;
	}
	char err[CFG_ERR_MAX];
	if (config_set_value(kind, obj, sub, value, err))
		PERR(ps, "%s", err);
	o->seen |= 1ull << i; /* given, even if wrong: no "missing" or second "duplicate" for it */
	return 1;
}

/* inih reads through this: count lines, take section headers, reject malformed lines. */
static char *reader(char *str, int num, void *user)
{
	struct parse *ps = user;
	if (!fgets(str, num, ps->f))
		return NULL;
	ps->line = ps->next_line;
	size_t n = strlen(str);
	if (n && str[n - 1] == '\n')
		ps->next_line++;
	else if (!feof(ps->f)) {
		PERR(ps, "line longer than %d bytes", num - 3);
		int ch;
		while ((ch = fgetc(ps->f)) != EOF && ch != '\n')
			;
		ps->next_line++;
		strcpy(str, "\n");
		return str;
	}
	char copy[1024];
	snprintf(copy, sizeof copy, "%s", str);
	char *s = trim(copy);
	if (!*s || *s == ';' || *s == '#')
		return str;
	if (*s == '[') {
		char *end = strchr(s, ']');
		if (!end) {
			PERR(ps, "section header without ']'");
			ps->skip = true;
			ps->in_section = true;
		} else {
			*end = '\0';
			begin_section(ps, trim(s + 1));
		}
		strcpy(str, "\n");
		return str;
	}
	if (!strpbrk(s, "=:")) {
		PERR(ps, "expected \"name = value\" or \"[section]\"");
		strcpy(str, "\n");
	}
	return str;
}

int config_load(const char *file, struct config *c, struct cfg_errors *errs)
{
	config_init(c);
	snprintf(c->file, sizeof c->file, "%s", file);
	FILE *f = fopen(file, "r");
	if (!f) {
		int err = errno;
		cfg_errors_add(errs, "%s: cannot open: %s", file, strerror(err));
		return -err;
	}
	/* Indented lines are ordinary lines, not continuations of the previous value. */
	ini_allow_multiline = false;
	struct parse ps = { .c = c, .e = errs, .f = f, .next_line = 1 };
	size_t before = errs->n;
	int r = ini_parse_stream(reader, &ps, on_value, &ps);
	fclose(f);
	if (r > 0 && errs->n == before)
		cfg_errors_add(errs, "%s:%d: syntax error", file, r);
	else if (r < 0)
		cfg_errors_add(errs, "%s: cannot read", file);
	config_finalize(c);
	config_check(c, errs);
	if (errs->n != before) {
		config_free(c);
		return -1;
	}
	return 0;
}
