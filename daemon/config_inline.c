/* config_inline.c — the one inline-object rule: where a key's breaker_* / pool_* options go. The
 * INI reader (config_ini.c, for [key NAME] sections) and the control socket's `set` (control.c)
 * both call config_inline_target(), so a file and a runtime change cannot disagree on it.
 *
 * The rule: a key's breaker_* / pool_* options configure the object named after the key, made on
 * first use (marked inline, with the key's line and ORIGIN) and then referenced by the key. Refused
 * when a standalone object has that name, or when the key already uses another object
 * (`breaker =` / `pool =`). The breaker and the pool differ only in the offsets below.
 */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

static const struct inline_kind {
	size_t flag_off; /* of bool inline_of_key in the object */
	size_t ref_off;  /* of the key's reference to it (char[PROT_NAME_BYTES]) */
} inline_kinds[CFG_KIND_COUNT_] = {
	[CFG_BREAKER] = {offsetof(struct cfg_breaker, inline_of_key), offsetof(struct cfg_key, breaker)},
	[CFG_POOL] = {offsetof(struct cfg_pool, inline_of_key), offsetof(struct cfg_key, pool)},
};
_Static_assert(offsetof(struct cfg_breaker, o) == 0 && offsetof(struct cfg_pool, o) == 0,
               "inline objects start with their cfg_obj");

void *config_inline_target(struct config *c, size_t ki, enum cfg_kind kind, int origin,
                           char err[CFG_ERR_MAX])
{
	kind = kind == CFG_BREAKER ? CFG_BREAKER : CFG_POOL;
	const struct inline_kind *ik = &inline_kinds[kind];
	const char *what = config_kind_name(kind);
	struct cfg_key *k = &c->keys[ki];
	const char *ref = (const char *)k + ik->ref_off;
	if (ref[0] && strcmp(ref, k->o.name)) {
		snprintf(err, CFG_ERR_MAX, "%s_* options of key %s: the key uses %s %s; change that %s "
		         "instead", what, k->o.name, what, ref, what);
		return NULL;
	}
	char *obj = config_find(c, kind, k->o.name);
	if (obj && !*(bool *)(obj + ik->flag_off)) {
		const struct cfg_obj *o = (const struct cfg_obj *)obj;
		if (o->line)
			snprintf(err, CFG_ERR_MAX, "%s_* options of [key %s] clash with [%s %s] (line %d)",
			         what, k->o.name, what, o->name, o->line);
		else
			snprintf(err, CFG_ERR_MAX, "%s_* options of key %s clash with %s %s", what,
			         k->o.name, what, o->name);
		return NULL;
	}
	if (!obj) {
		obj = config_add(c, kind, k->o.name);
		k = &c->keys[ki]; /* adding may have moved the arrays */
		if (!obj) {
			snprintf(err, CFG_ERR_MAX, "out of memory");
			return NULL;
		}
		*(bool *)(obj + ik->flag_off) = true;
		((struct cfg_obj *)obj)->line = k->o.line;
		((struct cfg_obj *)obj)->origin = origin;
		/* both are char[PROT_NAME_BYTES] holding a terminated name */
		memcpy((char *)k + ik->ref_off, k->o.name, PROT_NAME_BYTES);
	}
	return obj;
}
