/* schema.c — the reader of the schema pages (man/prot-json.7.scd, man/prot-control.7.scd) that
 * test_protctl and test_control compare the programs' output with: the conventions are in
 * schema.h. The pages are the tree's own files, but are read with bounds all the same: a line,
 * a name, a member list and the number of sections each have a limit, and a page beyond one
 * fails the test rather than being cut.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema.h"

static void copy(char *dst, size_t n, const char *src, size_t len)
{
	cr_assert_lt(len, n, "schema: \"%.*s\" is longer than %zu bytes", (int)len, src, n - 1);
	memcpy(dst, src, len);
	dst[len] = '\0';
}

/* "*name* (type)" at the start of a line: the member, true. */
static bool member_line(const char *line, struct schema_member *m)
{
	const char *end = line[0] == '*' ? strchr(line + 1, '*') : NULL;
	if (!end || end == line + 1 || strncmp(end, "* (", 3) != 0)
		return false;
	for (const char *c = line + 1; c < end; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'))
			return false;
	size_t tl = strlen(end + 3);
	if (tl < 1 || end[3 + tl - 1] != ')')
		return false;
	copy(m->name, sizeof m->name, line + 1, (size_t)(end - line - 1));
	copy(m->type, sizeof m->type, end + 3, tl - 1);
	m->seen = 0;
	return true;
}

static void add_member(struct schema_section *s, const struct schema_member *m)
{
	cr_assert_lt(s->n, SCHEMA_MEMBERS, "schema: section %s has too many members", s->name);
	cr_assert_null(schema_member(s, m->name), "schema: %s lists %s twice", s->name, m->name);
	s->m[s->n++] = *m;
}

/* Where the reader is: the group, and the section its lines belong to (none right after a group's
 * heading, so the text between groups belongs to no section). */
struct reader {
	char group[32];
	struct schema_section *cur;
};

static void read_line(struct schema *sc, char *line, struct reader *r)
{
	struct schema_member m;
	const char *inc, *ver = strstr(line, " version is *");
	line[strcspn(line, "\n")] = '\0';
	if (line[0] == ';' || line[0] == '\t')
		return; /* comments; meanings */
	if (strncmp(line, "# ", 2) == 0) {
		copy(r->group, sizeof r->group, line + 2, strlen(line + 2));
		r->cur = NULL;
	} else if (strncmp(line, "## ", 3) == 0) {
		cr_assert_lt(sc->n, SCHEMA_SECTIONS, "schema: too many sections");
		r->cur = &sc->s[sc->n++];
		memset(r->cur, 0, sizeof *r->cur);
		copy(r->cur->group, sizeof r->cur->group, r->group, strlen(r->group));
		copy(r->cur->name, sizeof r->cur->name, line + 3, strlen(line + 3));
	} else if (ver && sc->version < 0) {
		sc->version = strtol(ver + 13, NULL, 10);
	} else if (r->cur && member_line(line, &m)) {
		add_member(r->cur, &m);
	} else if (r->cur && (inc = strstr(line, "member of *"))) {
		const char *end = strchr(inc + 11, '*');
		cr_assert(end, "schema: %s", line);
		copy(r->cur->include, sizeof r->cur->include, inc + 11, (size_t)(end - inc - 11));
	}
}

void schema_load(struct schema *sc, const char *file)
{
	const char *src = getenv("PROT_SRCDIR");
	char path[1024], line[1024];
	struct reader r = { "", NULL };
	snprintf(path, sizeof path, "%s/man/%s", src ? src : ".", file);
	FILE *f = fopen(path, "r");
	cr_assert(f, "cannot read the schema %s (PROT_SRCDIR)", path);
	sc->n = 0;
	sc->version = -1;
	while (fgets(line, sizeof line, f)) {
		cr_assert(strchr(line, '\n') || feof(f), "schema %s: a line longer than %zu bytes", path,
		          sizeof line - 2);
		read_line(sc, line, &r);
	}
	fclose(f);
	cr_assert_geq(sc->version, 0, "schema %s states no version", path);
	for (int i = 0; i < sc->n; i++) {
		struct schema_section *s = &sc->s[i];
		if (!s->include[0])
			continue;
		struct schema_section *from = NULL;
		for (int j = 0; j < sc->n && !from; j++)
			if (j != i && strcmp(sc->s[j].name, s->include) == 0 && strcmp(sc->s[j].group, s->group))
				from = &sc->s[j];
		cr_assert(from, "schema %s: %s includes the members of %s, which is not an object", path,
		          s->name, s->include);
		for (int k = 0; k < from->n; k++)
			add_member(s, &from->m[k]);
	}
}

struct schema_section *schema_find(struct schema *sc, const char *group, const char *name)
{
	for (int i = 0; i < sc->n; i++)
		if (strcmp(sc->s[i].group, group) == 0 && strcmp(sc->s[i].name, name) == 0)
			return &sc->s[i];
	return NULL;
}

struct schema_member *schema_member(struct schema_section *s, const char *name)
{
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->m[i].name, name) == 0)
			return &s->m[i];
	return NULL;
}

/* Strip suffix from the end of buf: true when it was there. */
static bool strip(char *buf, const char *suffix)
{
	size_t n = strlen(buf), k = strlen(suffix);
	if (n < k || strcmp(buf + n - k, suffix) != 0)
		return false;
	buf[n - k] = '\0';
	return true;
}

void schema_type(const char *type, struct schema_type *t)
{
	char buf[480];
	memset(t, 0, sizeof *t);
	copy(buf, sizeof buf, type, strlen(type));
	t->optional = strip(buf, ", optional");
	t->nullable = strip(buf, " or null");
	char *colon = strchr(buf, ':');
	if (colon) {
		copy(t->set, sizeof t->set, buf, (size_t)(colon - buf));
		char *save = NULL;
		for (char *w = strtok_r(colon + 1, ", ", &save); w; w = strtok_r(NULL, ", ", &save)) {
			cr_assert_lt(t->nwords, SCHEMA_WORDS, "schema: set %s has too many words", t->set);
			copy(t->words[t->nwords++], sizeof t->words[0], w, strlen(w));
		}
		return;
	}
	for (char *p = buf, *next; p; p = next) {
		next = strstr(p, " or ");
		size_t len = next ? (size_t)(next - p) : strlen(p);
		cr_assert_lt(t->nalt, 4, "schema: too many alternatives in (%s)", type);
		copy(t->alt[t->nalt++], sizeof t->alt[0], p, len);
		if (next)
			next += 4;
	}
}

bool schema_word(const struct schema_type *t, const char *word)
{
	for (int i = 0; i < t->nwords; i++)
		if (strcmp(t->words[i], word) == 0)
			return true;
	return false;
}
