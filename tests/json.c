/* json.c — protctl's JSON as the tests read it: a strict RFC 8259 validator (protctl's output must
 * be valid whatever the segment holds), a reader of what it accepted, and the check of one document
 * against the schema page man/prot-json.7.scd (tests/schema.c reads it). test_protctl runs protctl
 * and hands its output here; nothing here knows a member of its own.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* ---- the validator ------------------------------------------------------------------------- */

struct js {
	const char *s;
	int depth;
};

static bool js_value(struct js *j);

static void js_ws(struct js *j)
{
	while (*j->s == ' ' || *j->s == '\t' || *j->s == '\n' || *j->s == '\r')
		j->s++;
}

static bool js_lit(struct js *j, const char *lit)
{
	size_t n = strlen(lit);
	if (strncmp(j->s, lit, n) != 0)
		return false;
	j->s += n;
	return true;
}

static bool js_utf8(struct js *j)
{
	const unsigned char *u = (const unsigned char *)j->s;
	int n = u[0] >= 0xf0 && u[0] <= 0xf4 ? 4 : u[0] >= 0xe0 && u[0] < 0xf0 ? 3 : u[0] >= 0xc2 && u[0] < 0xe0 ? 2 : 0;
	if (!n)
		return false;
	for (int i = 1; i < n; i++)
		if ((u[i] & 0xc0) != 0x80)
			return false;
	if ((n == 3 && u[0] == 0xe0 && u[1] < 0xa0) || (n == 3 && u[0] == 0xed && u[1] >= 0xa0) ||
	    (n == 4 && u[0] == 0xf0 && u[1] < 0x90) || (n == 4 && u[0] == 0xf4 && u[1] >= 0x90))
		return false;
	j->s += n;
	return true;
}

static bool js_string(struct js *j)
{
	if (*j->s != '"')
		return false;
	j->s++;
	for (;;) {
		unsigned char ch = (unsigned char)*j->s;
		if (ch == '"') {
			j->s++;
			return true;
		}
		if (ch < 0x20)
			return false; /* includes the end of the text */
		if (ch == '\\') {
			j->s++;
			if (*j->s == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!strchr("0123456789abcdefABCDEF", j->s[i]) || !j->s[i])
						return false;
				j->s += 5;
			} else if (*j->s && strchr("\"\\/bfnrt", *j->s)) {
				j->s++;
			} else {
				return false;
			}
		} else if (ch >= 0x80) {
			if (!js_utf8(j))
				return false;
		} else {
			j->s++;
		}
	}
}

static bool js_digits(struct js *j)
{
	if (*j->s < '0' || *j->s > '9')
		return false;
	while (*j->s >= '0' && *j->s <= '9')
		j->s++;
	return true;
}

static bool js_number(struct js *j)
{
	if (*j->s == '-')
		j->s++;
	if (*j->s == '0')
		j->s++;
	else if (!js_digits(j))
		return false;
	if (*j->s == '.') {
		j->s++;
		if (!js_digits(j))
			return false;
	}
	if (*j->s == 'e' || *j->s == 'E') {
		j->s++;
		if (*j->s == '+' || *j->s == '-')
			j->s++;
		if (!js_digits(j))
			return false;
	}
	return true;
}

/* Members of an object (pair = true) or elements of an array, after the opening bracket. */
static bool js_seq(struct js *j, char close, bool pair)
{
	js_ws(j);
	if (*j->s == close) {
		j->s++;
		return true;
	}
	for (;;) {
		js_ws(j);
		if (pair) {
			if (!js_string(j))
				return false;
			js_ws(j);
			if (*j->s++ != ':')
				return false;
		}
		if (!js_value(j))
			return false;
		js_ws(j);
		if (*j->s == close) {
			j->s++;
			return true;
		}
		if (*j->s++ != ',')
			return false;
	}
}

static bool js_value(struct js *j)
{
	bool ok;
	js_ws(j);
	if (++j->depth > 64)
		return false;
	switch (*j->s) {
	case '{': j->s++; ok = js_seq(j, '}', true); break;
	case '[': j->s++; ok = js_seq(j, ']', false); break;
	case '"': ok = js_string(j); break;
	case 't': ok = js_lit(j, "true"); break;
	case 'f': ok = js_lit(j, "false"); break;
	case 'n': ok = js_lit(j, "null"); break;
	default: ok = js_number(j); break;
	}
	j->depth--;
	return ok;
}

bool json_valid(const char *text)
{
	struct js j = {text, 0};
	if (!js_value(&j))
		return false;
	js_ws(&j);
	return *j.s == '\0';
}

/* ---- the reader and the check ------------------------------------------------------------------- */
/* A parsed JSON value (of a text json_valid accepted): strings keep their escapes, which the
 * schema's words and names never need. */
struct jv {
	char t; /* 'o' object, 'a' array, 's' string, 'n' number, 'b' boolean, 'z' null */
	char *text;        /* string (unquoted), number or literal */
	int n;
	char **keys;       /* objects */
	struct jv *kids;
};

static void jv_parse(const char **s, struct jv *v);

static char *jv_token(const char **s)
{
	const char *b = *s;
	if (**s == '"') {
		for ((*s)++; **s != '"'; (*s)++)
			if (**s == '\\')
				(*s)++;
		(*s)++;
		return strndup(b + 1, (size_t)(*s - b - 2));
	}
	while (**s && !strchr(",]} \t\r\n", **s))
		(*s)++;
	return strndup(b, (size_t)(*s - b));
}

static void jv_seq(const char **s, struct jv *v, char close)
{
	(*s)++;
	for (;;) {
		while (strchr(" \t\r\n,", **s))
			(*s)++;
		if (**s == close) {
			(*s)++;
			return;
		}
		v->kids = realloc(v->kids, (size_t)(v->n + 1) * sizeof *v->kids);
		v->keys = realloc(v->keys, (size_t)(v->n + 1) * sizeof *v->keys);
		cr_assert(v->kids && v->keys);
		v->keys[v->n] = NULL;
		if (close == '}') {
			v->keys[v->n] = jv_token(s);
			while (strchr(" \t\r\n:", **s))
				(*s)++;
		}
		jv_parse(s, &v->kids[v->n++]);
	}
}

static void jv_parse(const char **s, struct jv *v)
{
	memset(v, 0, sizeof *v);
	while (strchr(" \t\r\n", **s))
		(*s)++;
	if (**s == '{' || **s == '[') {
		v->t = **s == '{' ? 'o' : 'a';
		jv_seq(s, v, **s == '{' ? '}' : ']');
		return;
	}
	v->t = **s == '"' ? 's' : **s == 't' || **s == 'f' ? 'b' : **s == 'n' ? 'z' : 'n';
	v->text = jv_token(s);
}

static void jv_free(struct jv *v)
{
	for (int i = 0; i < v->n; i++) {
		jv_free(&v->kids[i]);
		free(v->keys[i]);
	}
	free(v->kids);
	free(v->keys);
	free(v->text);
}


static void check_object(struct schema *sc, const char *where, struct schema_section *s,
                         const struct jv *v);

/* v against one alternative of a type: true when it is of that type (and then checked). */
static bool check_alt(struct schema *sc, const char *where, const char *alt, const struct jv *v)
{
	if (strcmp(alt, "string") == 0)
		return v->t == 's';
	if (strcmp(alt, "number") == 0)
		return v->t == 'n' && strspn(v->text, "0123456789") == strlen(v->text);
	if (strcmp(alt, "boolean") == 0)
		return v->t == 'b';
	if (alt[0] == '"')
		return v->t == 's' && strncmp(alt + 1, v->text, strlen(v->text)) == 0 &&
		       alt[strlen(v->text) + 1] == '"';
	if (strncmp(alt, "object ", 7) == 0 && v->t == 'o') {
		struct schema_section *o = schema_find(sc, "OBJECTS", alt + 7);
		cr_assert(o, "%s: the schema has no object %s", where, alt + 7);
		check_object(sc, where, o, v);
		return true;
	}
	if (strncmp(alt, "array of ", 9) == 0 && v->t == 'a') {
		for (int i = 0; i < v->n; i++) {
			struct schema_type t;
			schema_type(alt + 9, &t);
			bool ok = false;
			for (int k = 0; k < t.nalt && !ok; k++)
				ok = check_alt(sc, where, t.alt[k], &v->kids[i]);
			cr_expect(ok, "%s[%d]: not %s", where, i, alt + 9);
		}
		return true;
	}
	return false;
}

static void check_value(struct schema *sc, const char *where, const char *type, const struct jv *v)
{
	struct schema_type t;
	schema_type(type, &t);
	if (v->t == 'z') {
		cr_expect(t.nullable, "%s: null, the schema says (%s)", where, type);
		return;
	}
	if (t.set[0]) {
		cr_expect(v->t == 's' && schema_word(&t, v->text), "%s: \"%s\" is not one of %s (%s)", where,
		          v->text ? v->text : "?", t.set, type);
		return;
	}
	bool ok = false;
	for (int i = 0; i < t.nalt && !ok; i++)
		ok = check_alt(sc, where, t.alt[i], v);
	cr_expect(ok, "%s: a %c value, the schema says (%s)", where, v->t, type);
}

/* Every member of v is one s lists, of the type it lists. */
static void check_object(struct schema *sc, const char *where, struct schema_section *s,
                         const struct jv *v)
{
	s->seen++;
	for (int i = 0; i < v->n; i++) {
		char at[256];
		snprintf(at, sizeof at, "%s.%s", where, v->keys[i]);
		struct schema_member *m = schema_member(s, v->keys[i]);
		cr_expect(m, "%s: a member prot-json(7) does not list in %s", at, s->name);
		if (!m)
			continue;
		m->seen++;
		check_value(sc, at, m->type, &v->kids[i]);
	}
}

void json_check_document(struct schema *sc, const char *doc, const char *text)
{
	struct schema_section *s = schema_find(sc, "DOCUMENTS", doc);
	cr_assert(s, "prot-json(7) has no document \"%s\"", doc);
	cr_assert(json_valid(text), "%s: not valid JSON:\n%s", doc, text);
	struct jv v;
	const char *p = text;
	jv_parse(&p, &v);
	cr_assert_eq(v.t, 'o', "%s: not an object", doc);
	cr_expect(v.n > 0 && strcmp(v.keys[0], "schema") == 0 && v.kids[0].t == 'n' &&
	          strtol(v.kids[0].text, NULL, 10) == sc->version,
	          "%s: the first member is not \"schema\": %ld:\n%s", doc, sc->version, text);
	check_object(sc, doc, s, &v);
	jv_free(&v);
}
