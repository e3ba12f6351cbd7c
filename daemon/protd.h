/* protd.h — what the daemon's files share: logging (main.c), the segment it owns (shm.c), the RCU
 * registry of its keys/breakers/pools and the applying of configurations (registry.c), and the
 * control socket (control.c). Nothing here is part of libprot.
 */
#ifndef PROTD_H
#define PROTD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "internal.h"

/* ---- main.c: logging to stderr with a timestamp and a level ---------------------------------- */
enum { LOG_ERR_, LOG_WARN_, LOG_INFO_, LOG_DEBUG_ };
void plog(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_err(...) plog(LOG_ERR_, __VA_ARGS__)
#define log_warn(...) plog(LOG_WARN_, __VA_ARGS__)
#define log_info(...) plog(LOG_INFO_, __VA_ARGS__)

/* ---- shm.c: the segment ------------------------------------------------------------------------ */
struct shm {
	char name[64];
	int fd;                      /* kept open: holds the flock that says "served" */
	struct prot_shm_header *hdr;
	size_t size;
	bool adopted;                /* an existing segment was re-adopted */
	uint32_t huge;               /* enum seg_huge: its place and pages (lib/seg_place.c) */
	uint64_t ident;              /* protd's process identity in the segment (lib/ident.c), held
	                                through fd's record lock */
};
/* The liveness view of protd's own segment (for the tick's reclaims). */
struct prot_idv shm_idv(const struct shm *s);

/* Create the segment of c (or re-adopt a compatible existing one; with `recreate`, replace an
 * incompatible one). Writes the header (state stays INIT on a new segment until shm_publish). 0, or
 * -1 with a message in err. */
int shm_setup(struct shm *s, const struct config *c, const char *control_path, bool recreate,
              char *err, size_t errn);
/* State LIVE (release): the header and every slot written before are visible to attachers. */
void shm_publish(struct shm *s);
void shm_heartbeat(struct shm *s, uint64_t now_ns);
/* Mode and group of a reload. */
void shm_set_access(struct shm *s, const struct config *c);
/* Clean stop: RETIRED + unlink, or (keep) LIVE with protd_pid = 0 for re-adoption. */
void shm_shutdown(struct shm *s, bool keep);
/* config_gen += 1 (release) and an event. */
/* Brackets every change of configuration: begin makes the generation odd, changed even again. */
void shm_config_begin(struct shm *s);
void shm_config_changed(struct shm *s, uint32_t ev, const char *what);

/* Slots of REG_KEYS / REG_BREAKERS / REG_POOLS. */
/* Index of the slot named NAME in state LIVE or RETIRED, or -1. */
int shm_slot_find(struct shm *s, int reg, const char *name);
/* A slot for a new name: FREE first, else a RETIRED one to recycle; -1 when all are LIVE. */
int shm_slot_alloc(struct shm *s, int reg);
/* Make slot i LIVE as NAME with cfg (16 words): rewrite under the seqlock when it already holds
 * NAME (state kept), else recycle it (state zeroed, generation bumped). */
void shm_slot_publish(struct shm *s, int reg, uint32_t i, const char *name, const void *cfg);
/* LIVE -> RETIRED: lookups miss it; its state stays for a later revival under the same name. */
void shm_slot_retire(struct shm *s, int reg, uint32_t i);
/* Copy slot i's cfg consistently (seqlock). */
void shm_slot_cfg(struct shm *s, int reg, uint32_t i, void *cfg);
/* The slot's state word (LIVE/RETIRED/FREE | gen). */
uint32_t shm_slot_state(struct shm *s, int reg, uint32_t i);
const char *shm_slot_name(struct shm *s, int reg, uint32_t i);

/* ---- registry.c: name -> slot + config, read under RCU, swapped by the writer ------------------ */
struct registry {
	struct config cfg;     /* the effective configuration: INI objects + runtime ones */
	uint32_t *key_slot;    /* slot of cfg.keys[i]; likewise for breakers and pools */
	uint32_t *breaker_slot;
	uint32_t *pool_slot;
};

/* Start with the objects a re-adopted segment holds (runtime ones kept, INI ones to be replaced by
 * the next apply), or empty. */
int registry_init(struct shm *s);
void registry_fini(void);
/* The writer lock: reload (main thread) and control-socket changes take turns. */
void registry_lock(void);
void registry_unlock(void);
/* The tick's way in: false when a writer (a reload, the control socket) holds it. */
bool registry_trylock(void);
/* Readers: between rcu_read_lock()/rcu_read_unlock() of urcu-memb (registry_read_*). */
void registry_read_lock(void);
void registry_read_unlock(void);
const struct registry *registry_current(void);
/* Writer (holding registry_lock): a private copy of the current effective configuration. */
int registry_snapshot(struct config *out);
/* Writer: write *next to the segment (new objects appear, changed ones are rewritten under their
 * seqlocks, missing ones retire), swap it in, free the old version after a grace period. next is
 * taken over (freed here). ev: EV_CONFIG_RELOADED or EV_CONFIG_CHANGED; 0 for none. */
int registry_apply(struct shm *s, struct config *next, uint32_t ev);
/* Merge the runtime objects of the current registry into a freshly loaded INI config. */
int registry_merge_runtime(struct config *ini);

/* ---- ctlsock.c: the control socket (directory, credentials, deadlines, the serving thread) ------ */
int control_start(struct shm *s, const struct config *c, const char *path);
void control_stop(void);

/* ---- control.c: the control socket's requests ------------------------------------------------ */
#define CTL_REQ_MAX PROT_CTL_REQUEST_MAX  /* a request line, '\n' included */
#define CTL_REPLY_MAX (PROT_REPLY_MAX + 1) /* a reply, its NUL included (prot.h) */

/* What the caller could do to the segment (decided from SO_PEERCRED at accept). */
enum ctl_peer { CTL_PEER_NONE, CTL_PEER_READER, CTL_PEER_WRITER };

struct ctl_caller {
	enum ctl_peer peer;
	const char *why; /* a reader: why it may not write ("uid N is not root, ...") */
	/* Asked with the writer lock held, right before a validated change is written: false when
	 * the caller gave up; then nothing is applied and .gone is set. NULL: always there. */
	bool (*present)(void *arg);
	void *arg;
	bool gone;
};

/* Serve one request line of caller who. reply gets "ok\n..." or "error ...\n"; an error reply
 * means nothing was applied. */
void control_handle(struct shm *s, const char *req, struct ctl_caller *who, char *reply, size_t n);

/* ---- notify.c: systemd readiness (sd_notify protocol), a no-op without $NOTIFY_SOCKET --------- */
/* Send STATE ("READY=1\nSTATUS=...", "RELOADING=1", "STOPPING=1") to $NOTIFY_SOCKET. */
void protd_notify(const char *state);

#endif
