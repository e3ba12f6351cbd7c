/* harness.h — what every test suite uses to run real processes: a real protd, fork()ed workers,
 * protctl invocations, each test on its own segment name, every wait bounded.
 *
 * Rules the harness enforces for every test:
 *  - th_segname() gives a name unique to this test process; th_cleanup() (registered by th_protd_start
 *    and th_segname) unlinks it;
 *  - processes are ended by pid, only the ones the test started (th_protd_stop, th_reap);
 *  - every wait takes a timeout in ms and fails the test when it runs out.
 */
#ifndef PROT_TEST_HARNESS_H
#define PROT_TEST_HARNESS_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "prot.h"

/* Paths of the binaries under test: $PROTD and $PROTCTL (set by tools/test.sh and meson test). */
const char *th_protd_path(void);
const char *th_protctl_path(void);

/* A segment name unique to this process and tag, e.g. "/prot-t-12345-rate1". Remembered and
 * unlinked by th_cleanup(). */
const char *th_segname(const char *tag);

/* Write TEXT to a fresh file in a private temporary directory; returns its path (static storage
 * per call, valid until th_cleanup()). printf-style. */
const char *th_write_file(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Start `protd -c INI --segment SEG [extra args...]` (NULL-terminated extra args) with stderr going
 * to a log file; wait (bounded, 5 s) until the segment is attachable. Returns the pid, or fails the
 * test. The log is printed when the test fails. */
pid_t th_protd_start(const char *ini, const char *seg, ...);
/* Like th_protd_start but does not wait for the segment: returns the pid at once. */
pid_t th_protd_spawn(const char *ini, const char *seg, ...);
/* SIGTERM, wait up to 5 s, SIGKILL if needed; returns the wait status. */
int th_protd_stop(pid_t pid);
/* Send SIGKILL and reap. */
void th_kill9(pid_t pid);
/* Path of protd's log file for pid (stderr). */
const char *th_protd_log(pid_t pid);
/* Wait (bounded) until a line of protd PID's log contains TEXT; false when timeout_ms ran out. */
bool th_log_until(pid_t pid, const char *text, int timeout_ms);

/* Wait for pid to exit, at most timeout_ms. Returns 0 and *status, or -ETIMEDOUT. */
int th_wait(pid_t pid, int timeout_ms, int *status);
/* Fork a child that runs fn(arg, i) and _exit()s with its return value (0 = success). */
pid_t th_fork(int (*fn)(void *arg, int i), void *arg, int i);
/* Fork n children running fn(arg, i) for i in [0, n), wait for all (bounded by timeout_ms), and
 * assert each exited with 0. */
void th_fork_n(int n, int (*fn)(void *arg, int i), void *arg, int timeout_ms);

/* Anonymous MAP_SHARED memory visible to forked children (zeroed). */
void *th_shared(size_t size);

/* Run argv (argv[0] is the program path) with a timeout; capture stdout and stderr separately into
 * static buffers. Returns the exit code (or 128+signal). */
struct th_out {
	int code;
	char out[65536];
	char err[16384];
};
int th_run(struct th_out *o, int timeout_ms, const char *const argv[]);
/* Convenience: run protctl with "--segment SEG" prepended before the other args (NULL-terminated). */
int th_protctl(struct th_out *o, const char *seg, ...);

/* The usual fixture: write INI_TEXT to a file, start protd on a new segment named after TAG, attach.
 * Fills *seg, *ini and *p; returns protd's pid. th_unserve() detaches and stops protd cleanly. */
pid_t th_serve(const char *tag, const char *ini_text, const char **seg, const char **ini, prot_t **p);
/* th_serve of HEAD followed by SECTIONS (a suite's [segment]/[daemon] head, a test's objects). */
pid_t th_serve_head(const char *tag, const char *head, const char *sections, const char **seg,
                    const char **ini, prot_t **p);
void th_unserve(prot_t *p, pid_t protd);

/* Open the segment, retrying for up to timeout_ms while it does not exist yet. */
prot_t *th_open(const char *seg, int timeout_ms);

/* Poll cond(arg) every ms until true or timeout_ms; returns true if it became true. */
bool th_until(bool (*cond)(void *arg), void *arg, int timeout_ms);

/* Monotonic ms. */
uint64_t th_now_ms(void);
/* Sleep ms milliseconds (children may call it). */
void th_sleep_ms(int ms);
/* Wait (at most ms) until pid is stopped (state T in /proc/PID/stat): kill(SIGSTOP) returns before
 * the target has stopped. true once it is stopped. */
bool th_wait_stopped(pid_t pid, int ms);
/* Wait (bounded) until the shared counter *flag reaches v, sleeping 1 ms between looks; false
 * when timeout_ms ran out. Asserts nothing: forked children use it too. */
bool th_wait_flag(_Atomic int *flag, int v, int timeout_ms);

/* ---- pools ---- */
/* prot_pool_status of POOL, asserted to succeed (the test process only). */
struct prot_pool_status th_pool_status(prot_t *p, const char *pool);
/* Poll POOL's status every ms until its uint32_t member FIELD (waiting, in_use, open, size, ...)
 * equals WANT; false when timeout_ms ran out. */
#define th_pool_until(p, pool, field, want, timeout_ms)                                            \
	th_pool_until_at((p), (pool), offsetof(struct prot_pool_status, field),                    \
	                 sizeof(((struct prot_pool_status *)0)->field), (want), (timeout_ms))
bool th_pool_until_at(prot_t *p, const char *pool, size_t off, size_t size, uint32_t want,
                      int timeout_ms);

/* A connector whose connections are small ints (1, 2, ...: th_conn_id), counted in a struct
 * th_conns the test keeps in memory shared with its children (th_shared). */
#define TH_CONN_IDS 64
struct th_conns {
	_Atomic int next_id;                    /* connection ids handed out */
	_Atomic int created, destroyed;
	_Atomic int open_max;                   /* most open at once (created - destroyed) */
	_Atomic int fail_create;                /* create fails with -ECONNREFUSED while set */
	_Atomic int destroyed_ids[TH_CONN_IDS]; /* 1 once connection id (< TH_CONN_IDS) was destroyed */
};
/* The connector (create, destroy, check) counting into *c. */
struct prot_connector th_connector(struct th_conns *c);
/* prot_pool_register(p, pool, th_connector(c)), asserted to succeed (the test process only). */
void th_pool_register(prot_t *p, const char *pool, struct th_conns *c);
/* The id of one of its connections. */
int th_conn_id(void *conn);

/* Move this test process into a mount namespace of its own with a fresh tmpfs (mount options
 * tmpfs_opts, e.g. "size=64m,huge=advise") over /dev/shm and no hugetlbfs mount: a test of what
 * /dev/shm or huge pages do that changes nothing of the host's. NULL, or why it cannot be had
 * (no root, no mount namespaces): the test skips with it. */
const char *th_private_dev_shm(const char *tmpfs_opts);
/* Entries of directory PATH but . and .. (asserted to be readable: the test process only). */
int th_dir_entries(const char *path);

/* Unlink remembered segment names, kill (by pid) any protd this process started and has not
 * stopped, remove temp files. Registered with atexit on first use; tests may call it directly. */
void th_cleanup(void);

#endif
