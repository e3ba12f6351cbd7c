/* ctl_top.c — `protctl top`: a live terminal view of the segment, redrawn every interval: keys
 * (rate allowed / denied, calls and failures per second, across all processes), breakers (state,
 * failures in the window, rejections per second) and pools (in use, waiting, timeouts per second).
 *
 * Plain ANSI, no curses: the alternate screen, cursor home and erase-to-end-of-line, one write()
 * per frame. The keyboard is read in raw mode (termios: no echo, no line editing, Ctrl-C read as a
 * byte); `q` or Ctrl-C quits, space or `r` redraws now, Ctrl-Z suspends. The terminal is restored
 * on every way out: the normal return, exit() (atexit), SIGINT / SIGTERM / SIGHUP / SIGQUIT (a
 * flag the loop acts on), and the fatal signals (restored in the handler, then re-raised).
 * SIGTSTP restores, stops, and re-enters raw mode on SIGCONT.
 *
 * It only reads the segment (the handle is read-only), and every name from the segment goes
 * through ctl_text, so a hostile name cannot reach the terminal as a control sequence: every ESC
 * in a frame is one this file wrote.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

#define INTERVAL_MIN_MS 100u
#define INTERVAL_MAX_MS 3600000u
#define NAME_COLS 24

/* ---- the terminal ------------------------------------------------------------------------------ */

static struct termios saved_tio;
static volatile sig_atomic_t have_tio, screen_on, stop_sig, resized, continued;

#define ENTER_SCREEN "\x1b[?1049h\x1b[?25l" /* alternate screen, cursor hidden */
#define LEAVE_SCREEN "\x1b[0m\x1b[?25h\x1b[?1049l"

static void put(const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDOUT_FILENO, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w, n -= (size_t)w;
	}
}

/* Async-signal-safe (write, tcsetattr) and idempotent: every way out calls it. */
static void term_restore(void)
{
	int e = errno;
	if (screen_on) {
		screen_on = 0;
		put(LEAVE_SCREEN, sizeof LEAVE_SCREEN - 1);
	}
	if (have_tio) {
		have_tio = 0;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
	}
	errno = e;
}

/* Raw input (stdin a terminal) and the alternate screen. */
static void term_enter(bool tty_in, const struct termios *tio)
{
	if (tty_in) {
		struct termios t = *tio;
		t.c_lflag &= ~(tcflag_t)(ICANON | ECHO | ISIG | IEXTEN);
		t.c_iflag &= ~(tcflag_t)(IXON | ICRNL);
		t.c_cc[VMIN] = 1;
		t.c_cc[VTIME] = 0;
		if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) == 0)
			have_tio = 1;
	}
	put(ENTER_SCREEN, sizeof ENTER_SCREEN - 1);
	screen_on = 1;
}

static void on_stop(int sig)
{
	stop_sig = sig;
}

static void on_winch(int sig)
{
	(void)sig;
	resized = 1;
}

static void on_fatal(int sig)
{
	term_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void on_tstp(int sig)
{
	(void)sig;
	term_restore();
	signal(SIGTSTP, SIG_DFL);
	raise(SIGTSTP); /* stops here until SIGCONT */
}

static void on_cont(int sig)
{
	(void)sig;
	continued = 1; /* the loop re-enters raw mode and redraws */
}

static void handle(int sig, void (*fn)(int), int flags)
{
	struct sigaction sa = {.sa_handler = fn, .sa_flags = flags}; /* no SA_RESTART: poll returns */
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

static void signals_install(void)
{
	static const int stops[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
	static const int fatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
	for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++)
		handle(stops[i], on_stop, 0);
	for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
		handle(fatal[i], on_fatal, SA_RESETHAND);
	handle(SIGWINCH, on_winch, 0);
	handle(SIGTSTP, on_tstp, 0);
	handle(SIGCONT, on_cont, 0);
}

/* ---- a frame ----------------------------------------------------------------------------------- */

struct frame {
	char *buf;
	size_t len, cap;
	int rows, cols, lines, cut; /* screen size; lines written; lines left out for want of rows */
};

static void frame_add(struct frame *f, const char *s, size_t n)
{
	if (f->len + n + 1 > f->cap) {
		size_t cap = (f->cap ? f->cap * 2 : 8192) + n;
		char *b = realloc(f->buf, cap);
		if (!b)
			return;
		f->buf = b, f->cap = cap;
	}
	memcpy(f->buf + f->len, s, n);
	f->len += n;
}

/* One line of the screen, cut at the terminal's width. Only this file's own SGR sequences
 * ("\x1b[...m") can be in the text (names are escaped), and they take no column. */
static void __attribute__((format(printf, 3, 4))) line(struct frame *f, const char *attr, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	if (f->lines >= f->rows - 1) { /* keep the last row for the "more" note */
		f->cut++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	if (attr)
		frame_add(f, attr, strlen(attr));
	int col = 0;
	size_t i = 0;
	while (text[i]) {
		if (text[i] == '\x1b') { /* ESC [ params final */
			i++;
			while (text[i] && !(text[i] >= '@' && text[i] <= '~' && text[i] != '['))
				i++;
			if (text[i])
				i++;
			continue;
		}
		if (((unsigned char)text[i] & 0xc0) != 0x80) { /* a code point starts: one column */
			if (col == f->cols)
				break;
			col++;
		}
		i++;
	}
	frame_add(f, text, i);
	frame_add(f, "\x1b[0m\x1b[K\n", 8);
	f->lines++;
}

/* An escaped name in exactly NAME_COLS columns: cut with '~' when longer, padded when shorter. */
static const char *name_col(char out[4 * NAME_COLS + 1], const char *name)
{
	const char *t = ctl_text(name);
	size_t o = 0;
	int cols = 0;

	for (const char *s = t; *s;) {
		size_t n = 1;
		while ((s[n] & 0xc0) == 0x80)
			n++;
		if (cols == NAME_COLS - 1 && s[n]) { /* more follows: mark the cut */
			out[o++] = '~';
			cols++;
			break;
		}
		memcpy(out + o, s, n);
		o += n, s += n;
		if (++cols == NAME_COLS)
			break;
	}
	while (cols++ < NAME_COLS)
		out[o++] = ' ';
	out[o] = '\0';
	return out;
}

/* ---- what is shown ----------------------------------------------------------------------------- */

/* A counter per slot from the previous frame, to show its rate. */
struct prev {
	char name[PROT_NAME_BYTES];
	uint64_t v[4];
	bool set;
};

struct top {
	struct ctl *c;
	uint64_t interval_ms;
	const struct prot_shm_header *h; /* the mapping prev[] describes */
	struct prev *keys, *breakers, *pools;
	uint32_t nkeys, nbreakers, npools;
	uint64_t then_ns; /* time of the previous frame; 0: none yet */
};

/* "12.5" per second since the previous frame, or "-" when there is none for this slot. */
static const char *per_s(char buf[32], const struct prev *p, int k, uint64_t now, double dt)
{
	if (!p->set || dt <= 0 || now < p->v[k]) {
		snprintf(buf, 32, "-");
		return buf;
	}
	snprintf(buf, 32, "%.1f", (double)(now - p->v[k]) / dt);
	return buf;
}

/* Is prev[i] this slot's previous frame (same name)? */
static struct prev *prev_of(struct prev *arr, uint32_t n, uint32_t i, const char *name)
{
	if (!arr || i >= n)
		return NULL;
	if (!arr[i].set || strcmp(arr[i].name, name) != 0) {
		memset(&arr[i], 0, sizeof arr[i]);
		snprintf(arr[i].name, sizeof arr[i].name, "%s", name);
	}
	return &arr[i];
}

static void remember(struct prev *p, uint64_t v0, uint64_t v1, uint64_t v2, uint64_t v3)
{
	if (!p)
		return;
	p->v[0] = v0, p->v[1] = v1, p->v[2] = v2, p->v[3] = v3;
	p->set = true;
}

/* A new mapping (first frame, or a successor segment after protd restarted): forget the past. */
static void top_rebase(struct top *t, const struct prot_shm_header *h)
{
	free(t->keys), free(t->breakers), free(t->pools);
	t->h = h;
	t->nkeys = seg_count(h, REG_KEYS);
	t->nbreakers = seg_count(h, REG_BREAKERS);
	t->npools = seg_count(h, REG_POOLS);
	t->keys = calloc(t->nkeys ? t->nkeys : 1, sizeof *t->keys);
	t->breakers = calloc(t->nbreakers ? t->nbreakers : 1, sizeof *t->breakers);
	t->pools = calloc(t->npools ? t->npools : 1, sizeof *t->pools);
	t->then_ns = 0;
}

#define BOLD "\x1b[1m"
#define REVERSE "\x1b[7m"

static const char *state_sgr(uint32_t s, const char **name)
{
	static const char *const sgr[] = {"\x1b[32m", "\x1b[31m", "\x1b[33m", "\x1b[35m"};
	*name = prot_breaker_state_name(s);
	return s < 4 ? sgr[s] : "";
}

static void draw_head(struct top *t, struct frame *f)
{
	struct prot_info in = {0};
	char protd[96], when[16], every[32];
	time_t now = time(NULL);
	struct tm tm;

	if (prot_get_info(t->c->p, &in) != 0)
		snprintf(in.segment, sizeof in.segment, "%s", t->c->segment ? t->c->segment : "?");
	if (in.protd_alive)
		snprintf(protd, sizeof protd, "protd pid %" PRId32 ", up", in.protd_pid);
	else
		snprintf(protd, sizeof protd, "protd not running");
	strftime(when, sizeof when, "%H:%M:%S", localtime_r(&now, &tm));
	line(f, REVERSE, " prot top  %s  %s  every %s  %s  (q quits) ", ctl_text(in.segment), protd,
	     ctl_dur(every, t->interval_ms), when);
}

static void draw_keys(struct top *t, struct frame *f, double dt)
{
	struct key_snapshot *ks;
	uint32_t n;
	char nm[4 * NAME_COLS + 1], r[4][32];

	line(f, NULL, "%s", "");
	line(f, BOLD, "%-*s %11s %11s %11s %11s", NAME_COLS, "KEY", "ALLOWED/s", "DENIED/s", "CALLS/s",
	     "FAILED/s");
	if (ctl_keys_snapshot(t->c, &ks, &n) != 0)
		return;
	for (uint32_t i = 0; i < n; i++) {
		struct prev *p = prev_of(t->keys, t->nkeys, ks[i].slot, ks[i].name);
		struct prev none = {0};
		const struct prev *q = p ? p : &none;
		line(f, NULL, "%s %11s %11s %11s %11s", name_col(nm, ks[i].name),
		     per_s(r[0], q, 0, ks[i].rate_allowed, dt), per_s(r[1], q, 1, ks[i].rate_denied, dt),
		     per_s(r[2], q, 2, ks[i].calls, dt), per_s(r[3], q, 3, ks[i].failed, dt));
		remember(p, ks[i].rate_allowed, ks[i].rate_denied, ks[i].calls, ks[i].failed);
	}
	if (n == 0)
		line(f, NULL, "%s", "(none)");
	free(ks);
}

static bool live(const struct prot_shm_header *h, int reg, uint32_t i)
{
	struct prot_named *s = seg_entry(h, reg, i);
	return SLOT_STATE(atomic_load_explicit(&s->state, memory_order_acquire)) == SLOT_LIVE;
}

static void draw_breakers(struct top *t, struct frame *f, struct prot_shm_header *h, double dt)
{
	char nm[4 * NAME_COLS + 1], r[32], d[32];
	int shown = 0;

	line(f, NULL, "%s", "");
	line(f, BOLD, "%-*s %-10s %9s %11s %10s", NAME_COLS, "BREAKER", "STATE", "FAILURES", "REJECTED/s",
	     "SINCE");
	for (uint32_t i = 0, n = seg_count(h, REG_BREAKERS); i < n; i++) {
		struct prot_breaker_status st;
		if (!live(h, REG_BREAKERS, i) || breaker_status_idx(h, i, 0, &st) != 0)
			continue;
		struct prev *p = prev_of(t->breakers, t->nbreakers, i, st.name);
		struct prev none = {0};
		const char *sname, *sgr = state_sgr(st.state, &sname);
		line(f, NULL, "%s %s%-10s\x1b[0m %9" PRIu32 " %11s %10s", name_col(nm, st.name), sgr, sname,
		     st.failures_in_window, per_s(r, p ? p : &none, 0, st.rejections, dt),
		     ctl_dur(d, st.last_transition_ms_ago));
		remember(p, st.rejections, 0, 0, 0);
		shown++;
	}
	if (!shown)
		line(f, NULL, "%s", "(none)");
}

static void draw_pools(struct top *t, struct frame *f, struct prot_shm_header *h, double dt)
{
	char nm[4 * NAME_COLS + 1], r[2][32], use[32];
	int shown = 0;

	line(f, NULL, "%s", "");
	line(f, BOLD, "%-*s %11s %9s %11s %11s", NAME_COLS, "POOL", "IN USE", "WAITING", "CHECKOUT/s",
	     "TIMEOUTS/s");
	for (uint32_t i = 0, n = seg_count(h, REG_POOLS); i < n; i++) {
		struct prot_pool_status st;
		if (!live(h, REG_POOLS, i) || pool_status_idx(h, i, &st) != 0)
			continue;
		struct prev *p = prev_of(t->pools, t->npools, i, st.name);
		struct prev none = {0};
		snprintf(use, sizeof use, "%" PRIu32 "/%" PRIu32, st.in_use, st.size + st.max_overflow);
		line(f, NULL, "%s %11s %9" PRIu32 " %11s %11s", name_col(nm, st.name), use, st.waiting,
		     per_s(r[0], p ? p : &none, 0, st.checkouts, dt),
		     per_s(r[1], p ? p : &none, 1, st.timeouts, dt));
		remember(p, st.checkouts, st.timeouts, 0, 0);
		shown++;
	}
	if (!shown)
		line(f, NULL, "%s", "(none)");
}

static void screen_size(int *rows, int *cols)
{
	struct winsize ws;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
		*rows = ws.ws_row, *cols = ws.ws_col;
	} else {
		*rows = 24, *cols = 80;
	}
}

static void draw(struct top *t)
{
	struct prot_shm_header *h = prot_hdr(t->c->p);
	struct frame f = {0};
	uint64_t now = prot_now_ns();

	if (h != t->h)
		top_rebase(t, h);
	double dt = t->then_ns ? (double)(now - t->then_ns) / 1e9 : 0;
	screen_size(&f.rows, &f.cols);
	frame_add(&f, "\x1b[H", 3);
	draw_head(t, &f);
	draw_keys(t, &f, dt);
	draw_breakers(t, &f, h, dt);
	draw_pools(t, &f, h, dt);
	if (f.cut) {
		char more[64];
		int n = snprintf(more, sizeof more, "(%d more lines: enlarge the terminal)", f.cut);
		frame_add(&f, more, (size_t)n < (size_t)f.cols ? (size_t)n : (size_t)f.cols);
		frame_add(&f, "\x1b[K", 3);
	}
	frame_add(&f, "\x1b[J", 3); /* clear what the previous frame left below */
	if (f.buf)
		put(f.buf, f.len);
	free(f.buf);
	t->then_ns = now;
}

/* ---- the command ------------------------------------------------------------------------------- */

/* "500ms", "2s", "1m"; a bare number is milliseconds, like every duration of prot. */
static int parse_interval(const char *s, uint64_t *ms)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	uint64_t mul = 0;

	if (end == s || errno || *s == '-' || *s == '+')
		return -1;
	if (*end == '\0' || strcmp(end, "ms") == 0)
		mul = 1;
	else if (strcmp(end, "s") == 0)
		mul = 1000;
	else if (strcmp(end, "m") == 0)
		mul = 60000;
	else
		return -1;
	if (v > INTERVAL_MAX_MS)
		return -2;
	*ms = v * mul;
	return *ms >= INTERVAL_MIN_MS && *ms <= INTERVAL_MAX_MS ? 0 : -2;
}

static int top_args(int argc, char **argv, uint64_t *interval)
{
	for (int i = 1; i < argc; i++) {
		const char *v = NULL;
		if (strcmp(argv[i], "--interval") == 0 || strcmp(argv[i], "-i") == 0) {
			if (++i >= argc)
				return ctl_fail(CTL_EUSAGE, "top: %s needs a DURATION (e.g. 500ms, 2s)", argv[i - 1]);
			v = argv[i];
		} else if (strncmp(argv[i], "--interval=", 11) == 0) {
			v = argv[i] + 11;
		} else {
			return ctl_fail(CTL_EUSAGE, "top: unknown argument '%s'; usage: protctl top "
			                "[--interval DURATION]", ctl_text(argv[i]));
		}
		int r = parse_interval(v, interval);
		if (r == -1)
			return ctl_fail(CTL_EUSAGE, "top: interval '%s' is not a duration (e.g. 500ms, 2s, 1m; a "
			                "bare number is milliseconds)", ctl_text(v));
		if (r < 0)
			return ctl_fail(CTL_EUSAGE, "top: interval '%s' is out of range (100ms to 1h)", ctl_text(v));
	}
	return CTL_OK;
}

/* Keys typed since the last look: true when one of them quits. */
static bool keys_quit(int fd, bool *redraw, bool *eof)
{
	char b[64];
	ssize_t n = read(fd, b, sizeof b);

	if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
		*eof = true;
		return false;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (b[i] == 'q' || b[i] == 'Q' || b[i] == 3 /* Ctrl-C */)
			return true;
		if (b[i] == ' ' || b[i] == 'r' || b[i] == 12 /* Ctrl-L */)
			*redraw = true;
		if (b[i] == 26) /* Ctrl-Z (read as a byte in raw mode): suspend like a shell job */
			raise(SIGTSTP);
	}
	return false;
}

static void top_loop(struct top *t, bool tty_in)
{
	bool eof = !tty_in;
	uint64_t next = 0;

	while (!stop_sig) {
		uint64_t now = prot_now_ns() / 1000000u;
		bool redraw = resized != 0;
		if (continued) {
			continued = 0;
			handle(SIGTSTP, on_tstp, 0);
			term_enter(tty_in, &saved_tio);
			redraw = true;
		}
		if (redraw || now >= next) {
			resized = 0;
			draw(t);
			next = now + t->interval_ms;
		}
		struct pollfd pfd = {.fd = eof ? -1 : STDIN_FILENO, .events = POLLIN};
		int wait = (int)(next > now ? next - now : 0);
		int r = poll(&pfd, 1, wait);
		if (r > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR))) {
			bool again = false;
			if (keys_quit(STDIN_FILENO, &again, &eof))
				return;
			if (again)
				next = 0;
			if (eof && (pfd.revents & (POLLHUP | POLLERR)))
				return; /* the terminal went away */
		}
	}
}

static int cmd_top(struct ctl *c, int argc, char **argv)
{
	struct top t = {.c = c, .interval_ms = 1000};
	int rc = top_args(argc, argv, &t.interval_ms);

	if (rc != CTL_OK)
		return rc;
	if (c->json)
		return ctl_fail(CTL_EUSAGE, "top: a live view has no --json form; for one JSON snapshot use "
		                "protctl --json metrics");
	if (!isatty(STDOUT_FILENO))
		return ctl_fail(CTL_EUSAGE, "top: standard output is not a terminal; for scripts use "
		                "protctl stats or protctl metrics");
	fflush(stdout);
	bool tty_in = isatty(STDIN_FILENO);
	if (tty_in && tcgetattr(STDIN_FILENO, &saved_tio) != 0)
		tty_in = false;
	atexit(term_restore);
	signals_install();
	term_enter(tty_in, &saved_tio);
	top_loop(&t, tty_in);
	term_restore();
	free(t.keys), free(t.breakers), free(t.pools);
	return CTL_OK;
}

const struct ctl_cmd ctl_top_cmds[] = {
	{"top", NULL, "[--interval DURATION]",
	 "live view of keys, breakers and pools, redrawn every DURATION (1s); q or Ctrl-C quits",
	 0, 2, false, cmd_top},
	{0},
};
