/* ctl_common.c — what every protctl command shares: error reporting and exit codes (a JSON error
 * object on stdout under --json), the opening of every JSON document (its schema version), JSON
 * string output, terminal-safe text for untrusted strings, human durations. Every object's command table is defined by its own file: a build that lacks one
 * does not link. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "ctl.h"

bool ctl_json_errors;

void ctl_json_open(FILE *f, bool spaced)
{
	fprintf(f, spaced ? "{\"schema\": %d, " : "{\"schema\":%d,", PROT_JSON_SCHEMA);
}

/* --json: the error also goes to stdout as {"schema": N, "error": MESSAGE, "exit": CODE}, so
 * stdout is JSON whatever happens (what was printed before it, if anything, ends with its own
 * newline). */
static void json_error(const char *msg, int code)
{
	ctl_json_open(stdout, true);
	fputs("\"error\": ", stdout);
	ctl_json_str(stdout, msg);
	printf(", \"exit\": %d}\n", code);
}

int ctl_fail(int code, const char *fmt, ...)
{
	va_list ap;
	char msg[1024];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (ctl_json_errors)
		json_error(msg, code);
	fflush(stdout); /* keep what was printed before the error in order on a shared terminal */
	fprintf(stderr, "protctl: %s\n", ctl_text(msg));
	return code;
}

int ctl_code(int err)
{
	switch (err < 0 ? -err : err) {
	case 0: return CTL_OK;
	case PROT_ENOSEG: case PROT_EABI: case PROT_ESIZE: case PROT_ECORRUPT: case PROT_ERETIRED:
		return CTL_ESEGMENT;
	case EACCES: case EPERM: case EROFS:
		return CTL_EPERM;
	case PROT_ENOTCONNECTED: case ECONNREFUSED: case ETIMEDOUT:
		return CTL_ECONTROL;
	case PROT_ETOOLONG: case EINVAL:
		return CTL_EUSAGE;
	default:
		return CTL_ENOENT; /* no such object, or refused */
	}
}

int ctl_bad_arg(int err, const char *cmd, const char *what, const char *value, int max)
{
	const char *v = ctl_text(value);
	if (err == -PROT_ETOOLONG)
		return ctl_fail(CTL_EUSAGE, "%s: %s '%s' is longer than %d bytes", cmd, what, v, max);
	if (err == -EINVAL)
		return ctl_fail(CTL_EUSAGE, "%s: %s '%s' is not valid (1 to %d bytes, no spaces)", cmd,
		                what, v, max);
	return ctl_fail(ctl_code(err), "%s: %s '%s': %s", cmd, what, v, prot_strerror(err));
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when the bytes there are not one. */
static int utf8_len(const unsigned char *s)
{
	int n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : 0;

	if (s[0] >= 0xf5)
		return 0;
	for (int i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	/* overlong 3/4-byte forms, surrogates, and code points above U+10FFFF */
	if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (n == 3 && s[0] == 0xed && s[1] >= 0xa0) ||
	    (n == 4 && s[0] == 0xf0 && s[1] < 0x90) || (n == 4 && s[0] == 0xf4 && s[1] >= 0x90))
		return 0;
	return n;
}

/* Names come from the segment (untrusted): the output must stay valid JSON whatever the bytes,
 * so control characters are escaped and invalid UTF-8 becomes U+FFFD. */
void ctl_json_str(FILE *f, const char *s)
{
	const unsigned char *u = (const unsigned char *)(s ? s : "");

	fputc('"', f);
	while (*u) {
		int n;
		switch (*u) {
		case '"': fputs("\\\"", f); u++; continue;
		case '\\': fputs("\\\\", f); u++; continue;
		case '\n': fputs("\\n", f); u++; continue;
		case '\r': fputs("\\r", f); u++; continue;
		case '\t': fputs("\\t", f); u++; continue;
		}
		if (*u < 0x20 || *u == 0x7f) {
			fprintf(f, "\\u%04x", *u);
			u++;
		} else if (*u < 0x80) {
			fputc(*u++, f);
		} else if ((n = utf8_len(u)) > 0) {
			fwrite(u, 1, (size_t)n, f);
			u += n;
		} else {
			fputs("\\ufffd", f);
			u++;
		}
	}
	fputc('"', f);
}

/* Text output of a string from the segment: printable ASCII and valid UTF-8 (C1 controls aside)
 * as they are; backslash, control characters and bytes of invalid UTF-8 as \\ and \xNN, so no
 * byte of a hostile name reaches the terminal as a control sequence. Rotating static buffers:
 * up to 8 results may be used in one printf. */
const char *ctl_text(const char *s)
{
	static char bufs[8][4 * 512 + 1];
	static unsigned next;
	char *out = bufs[next++ % 8], *o = out;
	const unsigned char *u = (const unsigned char *)(s ? s : "");
	const char *end = out + sizeof bufs[0] - 5;

	while (*u && o < end) {
		int n = *u >= 0x80 ? utf8_len(u) : 1;
		bool c1 = n == 2 && u[0] == 0xc2 && u[1] < 0xa0; /* U+0080..U+009F */
		if (*u == '\\') {
			*o++ = '\\', *o++ = '\\', u++;
		} else if (*u < 0x20 || *u == 0x7f || n == 0 || c1) {
			o += sprintf(o, "\\x%02x", *u++);
		} else {
			for (int i = 0; i < n && o < end; i++)
				*o++ = (char)*u++;
		}
	}
	*o = '\0';
	return out;
}

const char *ctl_dur(char buf[32], uint64_t ms)
{
	if (ms == UINT64_MAX)
		snprintf(buf, 32, "never");
	else if (ms < 1000)
		snprintf(buf, 32, "%" PRIu64 "ms", ms);
	else if (ms % 3600000 == 0)
		snprintf(buf, 32, "%" PRIu64 "h", ms / 3600000);
	else if (ms % 60000 == 0)
		snprintf(buf, 32, "%" PRIu64 "m", ms / 60000);
	else if (ms % 1000 == 0)
		snprintf(buf, 32, "%" PRIu64 "s", ms / 1000);
	else {
		/* seconds with the significant decimals only: 1.5s, 1.25s, 61.001s */
		int len = snprintf(buf, 32, "%" PRIu64 ".%03" PRIu64, ms / 1000, ms % 1000);
		while (buf[len - 1] == '0')
			len--;
		buf[len] = 's';
		buf[len + 1] = '\0';
	}
	return buf;
}
