/* json.h — checking protctl's JSON output (tests/json.c): a strict validator, and the check of a
 * document against prot-json(7). */
#ifndef PROT_TEST_JSON_H
#define PROT_TEST_JSON_H

#include <stdbool.h>

#include "schema.h"

/* One JSON text (RFC 8259, strictly: no trailing commas, leading zeros, raw control characters or
 * invalid UTF-8), with nothing but whitespace around it. */
bool json_valid(const char *text);
/* TEXT is a document of section DOC of sc (group DOCUMENTS): valid, an object whose first member
 * is "schema" with sc's version, and every member (of it and of its objects, group OBJECTS) one
 * the section lists, of the type it lists; the members met are counted in sc (their .seen).
 * Fails the test otherwise. */
void json_check_document(struct schema *sc, const char *doc, const char *text);

#endif
