/* ctl_entity.c — how protctl writes and reads rate-limiter entities, which are any bytes (the
 * _bin API forms; NUL included): shown escaped, printable ASCII as it is, backslash as \\ and
 * every other byte as \xNN, in text and (as the value of a JSON string) in JSON; an ENTITY
 * argument is read back the same way, so what `rate top` prints can be pasted into `rate show`
 * or `rate reset`. Called by ctl_rate.c.
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

const char *ctl_ent_text(char out[CTL_ENT_TEXT], const void *ent, size_t len)
{
	const unsigned char *u = ent;
	char *o = out;

	for (size_t i = 0; i < len && i < PROT_ENTITY_MAX; i++) {
		if (u[i] == '\\') {
			*o++ = '\\';
			*o++ = '\\';
		} else if (u[i] < 0x20 || u[i] >= 0x7f) {
			o += sprintf(o, "\\x%02x", u[i]);
		} else {
			*o++ = (char)u[i];
		}
	}
	*o = '\0';
	return out;
}

static int hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int ctl_ent_parse(const char *arg, unsigned char out[PROT_ENTITY_MAX], size_t *len)
{
	size_t n = 0;

	for (const char *s = arg; *s; n++) {
		if (n == PROT_ENTITY_MAX)
			return -PROT_ETOOLONG;
		if (*s != '\\') {
			out[n] = (unsigned char)*s++;
		} else if (s[1] == '\\') {
			out[n] = '\\';
			s += 2;
		} else if (s[1] == 'x' && hex(s[2]) >= 0 && hex(s[3]) >= 0) {
			out[n] = (unsigned char)(hex(s[2]) << 4 | hex(s[3]));
			s += 4;
		} else {
			return -EINVAL; /* a backslash starts \\ or \xNN only */
		}
	}
	*len = n;
	return 0;
}
