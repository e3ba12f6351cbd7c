/* protctl.c — the command line: global options, dispatch from the object tables (tools/protctl/ctl.h),
 * argument-count checks, attaching (read-only unless the verb writes), usage and help.
 *
 * `protctl [--segment NAME] [--json] [--help] <object> [<verb>] [args]`
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static const struct ctl_cmd *const tables[] = {
	ctl_segment_cmds, ctl_stats_cmds, ctl_top_cmds, ctl_set_cmds, ctl_rate_cmds, ctl_breaker_cmds, ctl_pool_cmds,
};
#define NTABLES (sizeof tables / sizeof tables[0])

#define FOR_EACH_CMD(c)                                          \
	for (size_t t_ = 0; t_ < NTABLES; t_++)                  \
		for (const struct ctl_cmd *c = tables[t_]; c->object; c++)

/* The first command of OBJECT in table order, or NULL. */
static const struct ctl_cmd *first_of(const char *object)
{
	FOR_EACH_CMD(c)
		if (strcmp(c->object, object) == 0)
			return c;
	return NULL;
}

static const struct ctl_cmd *find(const char *object, const char *verb)
{
	FOR_EACH_CMD(c)
		if (strcmp(c->object, object) == 0 && c->verb && strcmp(c->verb, verb) == 0)
			return c;
	return NULL;
}

/* Is c the first command of its object (so each object is listed once)? */
static bool first_of_object(const struct ctl_cmd *c)
{
	return first_of(c->object) == c;
}

/* "a, b, c": the objects (object NULL) or the verbs of object, into buf. */
static const char *names(char *buf, size_t n, const char *object)
{
	size_t len = 0;
	buf[0] = '\0';
	FOR_EACH_CMD(c) {
		bool want = object ? strcmp(c->object, object) == 0 && c->verb : first_of_object(c);
		if (want && len < n)
			len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? ", " : "",
			                        object ? c->verb : c->object);
	}
	return buf;
}

static void print_cmd_line(FILE *f, const struct ctl_cmd *c)
{
	char usage[128];
	snprintf(usage, sizeof usage, "%s%s%s%s%s", c->object, c->verb ? " " : "",
	         c->verb ? c->verb : "", c->args && *c->args ? " " : "", c->args ? c->args : "");
	fprintf(f, "  %-34s %s\n", usage, c->help ? c->help : "");
}

static void print_usage(FILE *f)
{
	fputs("usage: protctl [--segment NAME] [--json] [--help] <object> [<verb>] [args]\n"
	      "\n"
	      "Inspect and manage the shared-memory segment that protd serves.\n"
	      "Options:\n"
	      "  --segment NAME   segment to attach (default: $PROT_SEGMENT, else " PROT_DEFAULT_SEGMENT ")\n"
	      "  --json           machine-readable output (valid JSON)\n"
	      "  --help, -h       this help; `protctl OBJECT --help` for one object\n"
	      "\n"
	      "Commands:\n",
	      f);
	FOR_EACH_CMD(c)
		print_cmd_line(f, c);
	fputs("\n"
	      "Commands attach read-only unless they change state, so read permission on the\n"
	      "segment is enough to inspect it.\n"
	      "\n"
	      "Exit codes:\n"
	      "  0  success\n"
	      "  1  the object or entity does not exist, or the operation was refused\n"
	      "  2  usage error (unknown object or verb, wrong arguments)\n"
	      "  3  segment unavailable (missing: protd not running; wrong ABI; wrong size; corrupt)\n"
	      "  4  permission denied\n"
	      "  5  protd unreachable (control socket)\n",
	      f);
}

static void print_object_help(FILE *f, const char *object)
{
	fprintf(f, "usage: protctl [--segment NAME] [--json] %s ...\n", object);
	FOR_EACH_CMD(c)
		if (strcmp(c->object, object) == 0)
			print_cmd_line(f, c);
}

static int usage_of(const struct ctl_cmd *c)
{
	return ctl_fail(CTL_EUSAGE, "usage: protctl %s%s%s%s%s", c->object, c->verb ? " " : "",
	                c->verb ? c->verb : "", c->args && *c->args ? " " : "", c->args ? c->args : "");
}

static int unknown_object(const char *object)
{
	char buf[512];
	return ctl_fail(CTL_EUSAGE, "unknown object '%s'; objects: %s (see protctl --help)",
	                ctl_text(object), names(buf, sizeof buf, NULL));
}

static int bad_verb(const char *object, const char *verb)
{
	char buf[512];
	if (verb)
		return ctl_fail(CTL_EUSAGE, "%s: unknown verb '%s'; verbs: %s", object, ctl_text(verb),
		                names(buf, sizeof buf, object));
	return ctl_fail(CTL_EUSAGE, "%s: missing verb; verbs: %s", object, names(buf, sizeof buf, object));
}

static int attach(struct ctl *c, const struct ctl_cmd *cmd)
{
	int r = prot_open(c->segment, cmd->write ? 0 : PROT_OPEN_RDONLY, &c->p);
	if (r == 0)
		return CTL_OK;
	const char *name = c->segment ? c->segment : getenv("PROT_SEGMENT");
	if (!name || !*name)
		name = PROT_DEFAULT_SEGMENT;
	if (r == -EINVAL)
		return ctl_fail(CTL_EUSAGE, "segment '%s': invalid name (one '/' then up to 62 characters, "
		                "no other '/')", ctl_text(name));
	return ctl_fail(ctl_code(r), "segment %s: %s", ctl_text(name), prot_strerror(r));
}

/* Split argv into global options and the positional words (object, verb, args). Options are
 * global only before the object: after it, everything belongs to the command (e.g. --follow),
 * except --json and --help, which are accepted anywhere because people type them last. */
static int parse_globals(int argc, char **argv, struct ctl *c, bool *help, int *npos, char **pos)
{
	bool have_object = false;

	for (int i = 1; i < argc; i++) {
		char *a = argv[i];
		if (strcmp(a, "--json") == 0) {
			c->json = true;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			*help = true;
		} else if (!have_object && strcmp(a, "--segment") == 0) {
			if (++i >= argc)
				return ctl_fail(CTL_EUSAGE, "--segment needs a NAME");
			c->segment = argv[i];
		} else if (!have_object && strncmp(a, "--segment=", 10) == 0) {
			c->segment = a + 10;
		} else if (!have_object && a[0] == '-' && a[1]) {
			return ctl_fail(CTL_EUSAGE, "unknown option '%s' (see protctl --help)", ctl_text(a));
		} else {
			have_object = true;
			pos[(*npos)++] = a;
		}
	}
	return CTL_OK;
}

int main(int argc, char **argv)
{
	struct ctl c = {.out = stdout};
	bool help = false;
	int npos = 0, rc;
	char **pos = calloc((size_t)argc + 1, sizeof *pos);

	for (int i = 1; i < argc; i++) /* before anything can fail: --json errors are JSON too */
		if (strcmp(argv[i], "--json") == 0)
			ctl_json_errors = true;
	if (!pos)
		return ctl_fail(CTL_ENOENT, "out of memory");
	rc = parse_globals(argc, argv, &c, &help, &npos, pos);
	if (rc != CTL_OK)
		goto out;
	if (npos == 0) {
		if (!help && c.json) {
			rc = ctl_fail(CTL_EUSAGE, "missing command (see protctl --help)");
			goto out;
		}
		print_usage(help ? stdout : stderr);
		rc = help ? CTL_OK : CTL_EUSAGE;
		goto out;
	}
	const struct ctl_cmd *cmd = first_of(pos[0]);
	if (!cmd) {
		rc = unknown_object(pos[0]);
		goto out;
	}
	if (help) {
		print_object_help(stdout, pos[0]);
		rc = CTL_OK;
		goto out;
	}
	int skip = 1; /* words before the command's arguments */
	if (cmd->verb) {
		cmd = npos > 1 ? find(pos[0], pos[1]) : NULL;
		if (!cmd) {
			rc = bad_verb(pos[0], npos > 1 ? pos[1] : NULL);
			goto out;
		}
		skip = 2;
	}
	int nargs = npos - skip;
	if (nargs < cmd->min_args || nargs > cmd->max_args) {
		rc = usage_of(cmd);
		goto out;
	}
	rc = attach(&c, cmd);
	if (rc != CTL_OK)
		goto out;
	/* argv[0] is the verb (the command name for top-level commands) */
	rc = cmd->fn(&c, nargs + 1, pos + skip - 1);
	prot_close(c.p);
	if (fflush(stdout) != 0 && rc == CTL_OK)
		rc = ctl_fail(CTL_ENOENT, "writing output failed");
out:
	free(pos);
	return rc;
}
