/*
 * Backend health: one entry per backend address (resolved ip:port), with
 * the state machine
 *
 *	UP --fail--> SUSPECT --fail x health.failures--> DOWN
 *	DOWN --health.down_time passed, a probe (or one login) tries--> PROBING
 *	PROBING --ok--> UP		PROBING --fail--> DOWN (again for down_time)
 *	SUSPECT --ok--> UP (the count starts again)
 *
 * A failure is a connect that is refused, unreachable or timed out, or a
 * greeting that does not come or is not a greeting; a success is a greeting
 * received.  Both come from logins (passive) and from probes (active).
 * Routes skip addresses that are DOWN or PROBING.
 *
 * The table is shared by every worker and read far more than written: a
 * login that finds its address UP reads one atomic and takes no lock.
 * Entries live in one array of health.entries slots allocated at start and
 * never move or go away, so a pointer to one stays valid for the table's
 * life; the index over them is behind a rwlock, each entry's state behind
 * its own mutex (held for a few field updates, never across I/O).  An
 * address seen when the table is full is not tracked: it is always tried,
 * as if health checks were off for it, and a rate-limited warning says so.
 *
 * Entries are made for the addresses of named backends (numeric ones, at
 * start and on reload, for the protocols some listener serves) and for any
 * other address on its first failure; an address that only ever succeeds
 * costs nothing.
 */
#ifndef POSTERN_HEALTH_H
#define POSTERN_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "config.h"
#include "loop.h"

enum health_state {
	HEALTH_UP,		/* answering, or never failed */
	HEALTH_SUSPECT,		/* failed, fewer than health.failures in a row */
	HEALTH_DOWN,		/* skipped by routes until down_time has passed */
	HEALTH_PROBING,		/* one probe (or login) is trying it; still skipped */
	HEALTH_STATE_COUNT
};

enum health_event {
	HEALTH_EV_OK,		/* connected and greeted */
	HEALTH_EV_FAIL,		/* refused, unreachable, timed out, no greeting */
};

/* The pure state machine of one address. */
struct health_fsm {
	enum health_state state;
	unsigned	 failures;	/* consecutive */
	uint64_t	 since_ms;	/* last state change (monotonic ms) */
};

/*
 * Apply an event at now_ms with `threshold` (health.failures) consecutive
 * failures for DOWN.  Returns true if the state changed.
 */
bool	health_fsm_step(struct health_fsm *f, enum health_event ev,
	    unsigned threshold, uint64_t now_ms);
/*
 * May a trial start now?  A DOWN address whose down_ms have passed moves
 * to PROBING and the caller gets the trial (true); so does a PROBING one
 * whose trial went silent for down_ms (the prober or login that had it is
 * gone).  Otherwise false and nothing changes.
 */
bool	health_fsm_claim(struct health_fsm *f, uint64_t down_ms, uint64_t now_ms);
/* Do routes try the address? */
bool	health_fsm_usable(const struct health_fsm *f);
const char *health_state_name(enum health_state state);

#define HEALTH_TICK_MS		500	/* how often a worker looks for due probes */
/* State-change log lines per address: at most this many per window. */
#define HEALTH_LOG_CHANGES	4
#define HEALTH_LOG_WINDOW_MS	60000
#define HEALTH_ERROR_MAX	96	/* last error kept per address */
#define HEALTH_NAME_MAX		64	/* backend name (or route host) kept */

struct health;

/* One address, as health_foreach() shows it (a consistent snapshot). */
struct health_info {
	char		 address[64];	/* "ip:port", "[v6]:port" */
	char		 name[HEALTH_NAME_MAX];	/* backend name or route host */
	enum proto_id	 proto;
	enum health_state state;
	unsigned	 failures;	/* consecutive */
	bool		 named;		/* a named backend's: probed while up */
	time_t		 changed;	/* wall clock of the last state change */
	char		 last_error[HEALTH_ERROR_MAX];	/* "" if none yet */
	/* Counters since the entry was made, for metrics. */
	uint64_t	 failures_total;	/* failures seen, logins' and probes' */
	uint64_t	 probes;		/* active probes started */
	uint64_t	 probes_failed;		/* ... of which failed */
	uint64_t	 skipped;		/* login attempts that skipped it */
	uint64_t	 transitions;		/* state changes */
};

/* A table of at most `entries` addresses. */
struct health	*health_new(size_t entries);
void		 health_free(struct health **hp);
/* Entries in use, and the cap. */
size_t		 health_size(struct health *h);
size_t		 health_cap(struct health *h);

/*
 * Before connecting to sa: false if routes must skip it now.  With `trial`
 * (no active probes), a DOWN address past down_time lets this one caller
 * through as its trial.  Counts a skip.
 */
bool	health_usable(struct health *h, const struct sockaddr *sa, bool trial,
	    uint64_t down_ms, uint64_t now_ms);
/*
 * What a connect or greeting to sa came to.  error: why it failed (NULL
 * for success).  name: the backend or route host, for logs and the table.
 * A failure makes an entry if there is none (and room).
 */
void	health_report(struct health *h, const struct sockaddr *sa,
	    enum proto_id proto, const char *name, const char *error,
	    unsigned threshold, uint64_t down_ms, uint64_t now_ms);
/*
 * Main thread, at start and on reload: make sure the named backends'
 * numeric addresses have entries, for the protocols a listener serves,
 * and mark exactly those as probed while up.  An address two backends
 * share is named (and probed with the TLS settings of) the first.
 */
void	health_register_config(struct health *h, const struct config *cfg);

/*
 * Call cb for every entry (any thread).  Each entry is copied under its
 * own lock; the table's lock is not held during cb, so cb may take its
 * time, but must not call back into the table.  This is the read API for
 * the control socket and metrics exporters.
 */
void	health_foreach(struct health *h,
	    void (*cb)(const struct health_info *info, void *arg), void *arg);

/*
 * Active checks, one prober per worker loop: every HEALTH_TICK_MS it
 * starts the probes that are due among its share of the entries (those
 * whose first name hashes to it, so all of one backend's addresses share
 * a prober), at most health.probes / nworkers (at least one) at
 * once; due probes past that wait for a later tick.  A probe connects,
 * sends a PROXY header if the backend wants one (v1 UNKNOWN / v2 LOCAL),
 * hand-shakes TLS for implicit-TLS backends (verifying as logins do), and
 * waits for the greeting line ("* OK" or "* PREAUTH" for IMAP, "+OK" for
 * POP3), all within health.timeout; then it closes.   A STARTTLS backend is
 * probed in plaintext (its greeting comes before STARTTLS).
 */
struct health_prober;
struct gen;

struct health_prober *health_prober_new(struct health *h, struct loop *loop,
	    unsigned index, unsigned nworkers);
/* The worker's generation changed (config, TLS contexts); NULL: none. */
void	health_prober_set_gen(struct health_prober *p, struct gen *gen);
/* Start ticking (on the loop's thread). */
void	health_prober_start(struct health_prober *p);
/* Stop: cancel the timer and abort the probes in flight (loop's thread). */
void	health_prober_stop(struct health_prober *p);
void	health_prober_free(struct health_prober **pp);
/* Probes in flight now (loop's thread). */
unsigned health_prober_active(const struct health_prober *p);

#endif
