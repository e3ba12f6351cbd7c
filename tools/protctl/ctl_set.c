/* ctl_set.c — `protctl set KEY name=value ...`: runtime configuration through protd's control
 * socket (prot_configure_reply, protd's whole reply), printing what changed. protd validates with
 * the INI parser, so the messages are the INI's; the INI stays the source of truth on the next
 * SIGHUP.
 *
 * protd answers with records (man/prot-control.7.scd, read by lib/wire.c): a `created` record
 * when the key was made, then one `change` record per setting. Both outputs are rendered from
 * those records, never from text meant for people: "breaker_tolerance: 2 -> 3" and, with --json,
 * the "changes" objects of prot-json(7).
 */
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* One `change` record, for people: "SETTING: OLD -> NEW", or "SETTING: NEW (unchanged)". */
static void change_text(FILE *f, const struct wire_record *r)
{
	const char *old = wire_get(r, "old"), *new = wire_get(r, "new");
	const char *changed = wire_get(r, "changed");
	fprintf(f, "%s: ", ctl_text(wire_get(r, "setting")));
	if (changed && strcmp(changed, "false") == 0)
		fprintf(f, "%s (unchanged)\n", new ? ctl_text(new) : "(none)");
	else
		fprintf(f, "%s -> %s\n", old ? ctl_text(old) : "(none)", new ? ctl_text(new) : "(none)");
}

/* A record's field as a JSON string, or null when the record has none. */
static void json_field(FILE *f, const struct wire_record *r, const char *name)
{
	const char *v = wire_get(r, name);
	fprintf(f, "\"%s\":", name);
	if (v)
		ctl_json_str(f, v);
	else
		fputs("null", f);
}

static void change_json(FILE *f, const struct wire_record *r)
{
	static const char *const strings[] = {"kind", "name", "option", "setting", "old", "new"};
	const char *changed = wire_get(r, "changed");
	fputc('{', f);
	for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
		json_field(f, r, strings[i]);
		fputc(',', f);
	}
	fprintf(f, "\"changed\":%s}", changed && strcmp(changed, "false") == 0 ? "false" : "true");
}

/* Render protd's records (the body of an `ok` reply, parsed in place). */
static void render(struct ctl *c, const char *key, char *body)
{
	struct wire_record r;
	bool created = false;
	int changes = 0;
	if (c->json) {
		ctl_json_open(c->out, false);
		fputs("\"key\":", c->out);
		ctl_json_str(c->out, key);
		fputs(",\"changes\":[", c->out);
	}
	while (wire_next(&body, &r)) {
		bool is_change = strcmp(r.type, "change") == 0;
		if (strcmp(r.type, "created") == 0) {
			created = true;
			if (!c->json)
				fprintf(c->out, "key %s created\n", ctl_text(key));
		} else if (is_change && c->json) {
			fputs(changes ? "," : "", c->out);
			change_json(c->out, &r);
		} else if (is_change) {
			change_text(c->out, &r);
		}
		changes += is_change;
	}
	if (c->json)
		fprintf(c->out, "],\"created\":%s}\n", created ? "true" : "false");
	else if (!changes && !created)
		fputs("no change\n", c->out);
}

static int cmd_set(struct ctl *c, int argc, char **argv)
{
	char settings[1024] = "";
	size_t len = 0;
	for (int i = 2; i < argc; i++) {
		if (!strchr(argv[i], '=') || argv[i][0] == '=')
			return ctl_fail(CTL_EUSAGE, "set: '%s' is not name=value", ctl_text(argv[i]));
		int n = snprintf(settings + len, sizeof settings - len, "%s%s", len ? " " : "", argv[i]);
		if (n < 0 || (size_t)n >= sizeof settings - len)
			return ctl_fail(CTL_EUSAGE, "set: settings longer than %zu bytes", sizeof settings - 1);
		len += (size_t)n;
	}
	char *reply = malloc(PROT_REPLY_MAX + 1);
	if (!reply)
		return ctl_fail(CTL_ENOENT, "out of memory");
	int r = prot_configure_reply(c->p, argv[1], settings, reply, PROT_REPLY_MAX + 1, NULL);
	int code = CTL_OK;
	if (r < 0) {
		/* protd's message (or the library's, for an unknown outcome) names what was wrong */
		code = r == -PROT_EINVAL_CONFIG || r == -PROT_EEXIST ? CTL_ENOENT : ctl_code(r);
		if (reply[0])
			code = ctl_fail(code, "set %s: %s", ctl_text(argv[1]), ctl_text(reply));
		else
			code = ctl_bad_arg(r, "set", "key", argv[1], PROT_NAME_MAX);
	} else {
		render(c, argv[1], reply);
	}
	free(reply);
	return code;
}

const struct ctl_cmd ctl_set_cmds[] = {
	{"set", NULL, "KEY name=value ...",
	 "change a key at runtime through protd (INI names: rate_limit=100 breaker_tolerance=3 ...)", 2, 64,
	 false, cmd_set},
	{0},
};
