/* ctl_set.c — `protctl set KEY name=value ...`: runtime configuration through protd's control
 * socket (prot_configure), printing what changed. protd validates with the INI parser, so the
 * messages are the INI's; the INI stays the source of truth on the next SIGHUP.
 */
#include <string.h>

#include "ctl.h"

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
	struct prot_detail d;
	int r = prot_configure(c->p, argv[1], settings, &d);
	if (r < 0) {
		/* protd's message (or the library's, for an unknown outcome) names what was wrong */
		int code = r == -PROT_EINVAL_CONFIG || r == -PROT_EEXIST ? CTL_ENOENT : ctl_code(r);
		if (d.message[0])
			return ctl_fail(code, "set %s: %s", ctl_text(argv[1]), ctl_text(d.message));
		return ctl_bad_arg(r, "set", "key", argv[1], PROT_NAME_MAX);
	}
	if (c->json) {
		fputs("{\"key\":", c->out);
		ctl_json_str(c->out, argv[1]);
		fputs(",\"changes\":[", c->out);
		/* protd replies one "name: old -> new" per line */
		const char *sep = "";
		for (char *line = strtok(d.message, "\n"); line; line = strtok(NULL, "\n")) {
			fputs(sep, c->out);
			ctl_json_str(c->out, line);
			sep = ",";
		}
		fputs("]}\n", c->out);
	} else if (!d.message[0]) {
		fputs("no change\n", c->out);
	} else {
		/* protd's lines carry names and values: escaped for the terminal, line by line */
		for (char *line = strtok(d.message, "\n"); line; line = strtok(NULL, "\n"))
			fprintf(c->out, "%s\n", ctl_text(line));
	}
	return CTL_OK;
}

const struct ctl_cmd ctl_set_cmds[] = {
	{"set", NULL, "KEY name=value ...",
	 "change a key at runtime through protd (INI names: rate_limit=100 breaker_tolerance=3 ...)", 2, 64,
	 false, cmd_set},
	{0},
};
