/* config_schema.h — inside the config module only (daemon/config*.c; the rest of protd sees
 * config.h): the shape of one option and the lookups into the option tables of config_schema.c,
 * which the value parser (config_value.c), the whole-config checks (config_check.c), the INI reader
 * (config_ini.c) and the object model (config.c) share.
 */
#ifndef PROTD_CONFIG_SCHEMA_H
#define PROTD_CONFIG_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "wire.h"

enum opt_type { T_U64, T_DUR, T_ENUM, T_PCT, T_SIZE, T_REF, T_MODE, T_GROUP, T_SEGNAME, T_PATH, T_STR };

/* One option: its name, how its value is written, and where it is stored in its object. */
struct opt {
	const char *name;
	enum opt_type type;
	size_t off;   /* from the object's base */
	size_t size;  /* 4 or 8 for integers, buffer size for strings */
	uint64_t min, max;
	const enum prot_names *e; /* T_ENUM: the set of its names (lib/names.c) */
	const char *why_max; /* explains max when it is a capacity of the layout */
};

#define MIB (1ull << 20)
#define SEG_SIZE_DEFAULT (1ull << 30)      /* [daemon] max_segment_size */
#define SEG_SIZE_LIMIT (64ull << 30)       /* what libprot attaches to (lib/segment.c) */

/* Index of option NAME in KIND's table (the bit of cfg_obj.seen), or -1. */
int cfg_opt_index(enum cfg_kind kind, const char *name);
/* Option I of KIND's table (I from cfg_opt_index). */
const struct opt *cfg_opt(enum cfg_kind kind, int i);
/* Whether option NAME (one of KIND's table) was given for object O. */
bool cfg_seen(const struct cfg_obj *o, enum cfg_kind kind, const char *name);
/* "breaker_" / "pool_": how a key's options for its inline breaker or pool (KIND) begin. */
const char *cfg_inline_prefix(enum cfg_kind kind);

#endif
