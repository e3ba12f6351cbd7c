/* schema.h — the schemas of man/prot-json.7.scd (protctl --json) and man/prot-control.7.scd (the
 * control socket) as the tests read them, so that a test compares what the programs print with
 * the page people read, never with a list of its own:
 *   "# GROUP"                 a group of sections (DOCUMENTS, OBJECTS, REQUESTS, RECORDS)
 *   "## NAME"                 a section: a document, object, request or record type
 *   "*member* (TYPE)"         one member of the section (its meaning follows, indented)
 *   "... member of *X*, ..."  the section has every member of section X too
 *   "The ... version is *N*." the schema's (or the protocol's) version
 * TYPE: string, number, boolean, object NAME, array of TYPE, a "literal", several joined by " or ";
 * or SET: word, word, ... (a string that is one of the words); ", optional" and " or null" last.
 */
#ifndef PROT_TEST_SCHEMA_H
#define PROT_TEST_SCHEMA_H

#include <stdbool.h>

#define SCHEMA_MEMBERS 64
#define SCHEMA_SECTIONS 96
#define SCHEMA_WORDS 32

struct schema_member {
	char name[48];
	char type[480];
	int seen; /* how often a test met it */
};

struct schema_section {
	char group[32], name[64];
	struct schema_member m[SCHEMA_MEMBERS];
	int n;
	char include[48]; /* "every member of *X*": resolved by schema_load */
	int seen;
};

struct schema {
	struct schema_section s[SCHEMA_SECTIONS];
	int n;
	long version;
};

/* A member's TYPE, parsed. */
struct schema_type {
	bool nullable, optional;
	char set[48];                          /* a set of words: its name ("" otherwise) */
	char words[SCHEMA_WORDS][48];
	int nwords;
	char alt[4][160];                      /* otherwise the alternatives */
	int nalt;
};

/* Read man/FILE of $PROT_SRCDIR into *sc (large: static storage); fails the test when it cannot. */
void schema_load(struct schema *sc, const char *file);
/* The section NAME of GROUP, or NULL. */
struct schema_section *schema_find(struct schema *sc, const char *group, const char *name);
/* Its member NAME, or NULL. */
struct schema_member *schema_member(struct schema_section *s, const char *name);
void schema_type(const char *type, struct schema_type *t);
/* Is word one of t's words? */
bool schema_word(const struct schema_type *t, const char *word);

#endif
