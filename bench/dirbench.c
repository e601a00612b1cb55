/*
 * dirbench: directory lookups per second through postern's own directory
 * code (the LDAP pool and the route cache), with no proxy around it.
 *
 *	dirbench -c CONF [-n LOOKUPS] [-C OUTSTANDING] [-u PREFIX] [-N USERS]
 *
 * Opens the directory CONF describes, keeps OUTSTANDING lookups in flight
 * on one event loop (as a worker would), user names PREFIX%05u round
 * robin over N users, and prints one line:
 *	DIRBENCH lookups=N secs=S rate=R ok=A notfound=B tempfail=C cache=on|off
 * With the cache on, a first pass over all users warms it and is not
 * counted.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "directory.h"
#include "loop.h"
#include "route.h"
#include "username.h"
#include "util.h"

struct bench {
	struct loop		*loop;
	struct directory	*dir;
	const struct config	*cfg;
	const char		*prefix;
	unsigned		 nusers, next, outstanding, inflight;
	unsigned long		 target, issued, done, ok, notfound, tempfail;
};

static void	issue(struct bench *b);

static void
answered(void *arg, enum dir_status status, struct route *route,
    const char *detail)
{
	struct bench *b = arg;

	route_unref(&route);
	b->inflight--;
	b->done++;
	if (status == DIR_OK)
		b->ok++;
	else if (status == DIR_NOT_FOUND)
		b->notfound++;
	else
		b->tempfail++;
	if (b->done == b->target)
		loop_stop(b->loop);
	else
		issue(b);
}

static void
issue(struct bench *b)
{
	while (b->inflight < b->outstanding && b->issued < b->target) {
		struct username name;
		const char *error;
		char user[64];

		snprintf(user, sizeof(user), "%s%05u", b->prefix, b->next++ % b->nusers);
		if (username_normalise(&b->cfg->username, user, strlen(user),
		    &name, &error) < 0) {
			fprintf(stderr, "dirbench: %s: %s\n", user, error);
			exit(1);
		}
		b->inflight++;
		b->issued++;
		(void)directory_lookup(b->dir, b->loop, &name, PROTO_IMAP,
		    answered, b);
	}
}

static double
run(struct bench *b, unsigned long n)
{
	uint64_t t0 = clock_ms();

	b->target = n;
	b->issued = b->done = b->ok = b->notfound = b->tempfail = 0;
	issue(b);
	loop_run(b->loop);
	return (double)(clock_ms() - t0) / 1000.0;
}

int
main(int argc, char **argv)
{
	struct bench b = { .prefix = "user", .nusers = 10000,
	    .outstanding = 64 };
	struct config *cfg;
	unsigned long n = 100000;
	const char *conf = NULL;
	char err[512];
	double secs;
	int ch;

	while ((ch = getopt(argc, argv, "c:n:C:u:N:")) != -1) {
		switch (ch) {
		case 'c': conf = optarg; break;
		case 'n': n = strtoul(optarg, NULL, 10); break;
		case 'C': b.outstanding = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'u': b.prefix = optarg; break;
		case 'N': b.nusers = (unsigned)strtoul(optarg, NULL, 10); break;
		default:
			fprintf(stderr, "usage: dirbench -c CONF [-n LOOKUPS] "
			    "[-C OUTSTANDING] [-u PREFIX] [-N USERS]\n");
			return 1;
		}
	}
	if (conf == NULL || config_load(conf, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", conf ? err : "dirbench: -c CONF is required");
		return 1;
	}
	log_setup(LOG_LVL_ERROR, 0, 0);
	if (directory_open(cfg, &b.dir, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	b.cfg = cfg;
	b.loop = loop_new();
	/* Let the pool connect; with a cache, warm it with one pass. */
	sleep(1);
	if (b.dir->cache != NULL)
		(void)run(&b, b.nusers);
	secs = run(&b, n);
	printf("DIRBENCH lookups=%lu secs=%.2f rate=%.1f ok=%lu notfound=%lu "
	    "tempfail=%lu cache=%s pool=%u\n", b.done, secs,
	    secs > 0 ? (double)b.done / secs : 0.0, b.ok, b.notfound, b.tempfail,
	    b.dir->cache != NULL ? "on" : "off", cfg->directory.ldap.pool);
	directory_close(&b.dir);
	loop_free(&b.loop);
	config_free(&cfg);
	return b.tempfail > 0 ? 2 : 0;
}
