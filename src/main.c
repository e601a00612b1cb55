#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <ldap.h>
#include <libconfig.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <sasl/sasl.h>
#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "config.h"
#include "control.h"
#include "metrics.h"
#include "ctl_proto.h"
#include "directory.h"
#include "log.h"
#include "privsep.h"
#include "resolve.h"
#include "route.h"
#include "sasl.h"
#include "server.h"
#include "username.h"
#include "util.h"

#define RESOLVER_THREADS	2
/*
 * The configuration without -c, for the daemon and for `postern ctl`:
 * $(sysconfdir)/postern/postern.conf, from Makefile.am.
 */
#ifndef POSTERN_CONFIG_FILE
#define POSTERN_CONFIG_FILE	"/etc/postern/postern.conf"
#endif
/* How long `postern ctl` waits for the daemon's reply. */
#define CTL_REPLY_TIMEOUT	30

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: postern [-c FILE] [-d]\n"
	    "       postern [-c FILE] --check-config\n"
	    "       postern [-c FILE] --lookup USER [--protocol imap|pop3|sieve]\n"
	    "       postern ctl [-c FILE | -s SOCKET] [--json] VERB [ARGS]\n"
	    "       postern --version | --help\n"
	    "\n"
	    "  -c, --config FILE   configuration file (libconfig syntax); default\n"
	    "                      " POSTERN_CONFIG_FILE "\n"
	    "  -d, --daemon        detach and log to syslog\n"
	    "  -t, --check-config  validate the configuration, the certificates and\n"
	    "                      that the directory answers; exit 0 or 1\n"
	    "  -l, --lookup USER   show the route the directory gives USER\n"
	    "  -p, --protocol P    protocol for --lookup (default imap)\n"
	    "  -V, --version       print the version, features and libraries\n"
	    "  -h, --help          this text\n"
	    "\n"
	    "Signals: HUP reloads the configuration, TERM drains and stops,\n"
	    "INT stops at once.\n"
	    "\n"
	    "ctl talks to a running daemon through daemon.control (from FILE,\n"
	    "default " POSTERN_CONFIG_FILE ", or the socket given with -s):\n"
	    "  sessions [USER]     live sessions, one record each\n"
	    "  kick USER           close USER's sessions (IMAP: * BYE [UNAVAILABLE])\n"
	    "  flush USER|all      drop route cache entries\n"
	    "  route USER [PROTO]  what a login of USER would do now\n"
	    "  drain BACKEND       new logins skip this route host\n"
	    "  undrain BACKEND     ... and no longer\n"
	    "  reload              reload the configuration (as SIGHUP)\n"
	    "  stats               counters\n"
	    "  backends            backend addresses' health (state, failures)\n"
	    "  --json prints one JSON object per record.  Exit 0 ok, 1 error,\n"
	    "  2 when the daemon cannot be reached.\n");
}

/* The version, what this build can do, and the libraries it runs with. */
static void
print_version(void)
{
	const char *sasl_impl = NULL;
	int sasl_major = 0, sasl_minor = 0, sasl_step = 0, sasl_patch = 0;
	LDAPAPIInfo api = { .ldapai_info_version = LDAP_API_INFO_VERSION };

	printf("postern %s\n", PACKAGE_VERSION);
	printf("config file: %s\n", POSTERN_CONFIG_FILE);
	printf("features: systemd=%s sanitizers=%s fuzzing=%s\n",
#ifdef HAVE_SYSTEMD
	    "yes",
#else
	    "no",
#endif
#ifdef POSTERN_SANITIZERS
	    POSTERN_SANITIZERS,
#else
	    "no",
#endif
#ifdef POSTERN_FUZZING
	    "yes"
#else
	    "no"
#endif
	    );
	printf("OpenSSL: %s (built with %s)\n", OpenSSL_version(OPENSSL_VERSION),
	    OPENSSL_VERSION_TEXT);
	if (ldap_get_option(NULL, LDAP_OPT_API_INFO, &api) == LDAP_OPT_SUCCESS) {
		printf("libldap: %s %d.%d.%d (API %d, built with %d.%d.%d)\n",
		    api.ldapai_vendor_name, api.ldapai_vendor_version / 10000,
		    api.ldapai_vendor_version / 100 % 100,
		    api.ldapai_vendor_version % 100, api.ldapai_api_version,
		    LDAP_VENDOR_VERSION_MAJOR, LDAP_VENDOR_VERSION_MINOR,
		    LDAP_VENDOR_VERSION_PATCH);
		ldap_memfree(api.ldapai_vendor_name);
		ldap_memvfree((void **)api.ldapai_extensions);
	} else
		printf("libldap: %s (built with %d.%d.%d)\n", LDAP_VENDOR_NAME,
		    LDAP_VENDOR_VERSION_MAJOR, LDAP_VENDOR_VERSION_MINOR,
		    LDAP_VENDOR_VERSION_PATCH);
	printf("libconfig: built with %d.%d.%d\n", LIBCONFIG_VER_MAJOR,
	    LIBCONFIG_VER_MINOR, LIBCONFIG_VER_REVISION);
	sasl_version_info(&sasl_impl, NULL, &sasl_major, &sasl_minor,
	    &sasl_step, &sasl_patch);
	printf("Cyrus SASL: %s %d.%d.%d (built with %d.%d.%d)\n",
	    sasl_impl != NULL ? sasl_impl : "unknown", sasl_major, sasl_minor,
	    sasl_step, SASL_VERSION_MAJOR, SASL_VERSION_MINOR, SASL_VERSION_STEP);
}

/*
 * Tell the service manager where the daemon is (sd_notify(3)): READY=1
 * once the listeners accept, RELOADING=1 .. READY=1 around a reload,
 * STOPPING=1 at shutdown.  Nothing without libsystemd or NOTIFY_SOCKET.
 */
static void
sd_state(const char *state)
{
#ifdef HAVE_SYSTEMD
	int r = sd_notify(0, state);

	if (r < 0)
		log_warning("sd_notify(%s): %s", state, strerror(-r));
#else
	(void)state;
#endif
}

/*
 * The serving process.  psfd is its end of the socketpair to the
 * privileged parent, -1 when there is none (a single process).
 */
struct serve {
	const char	*path;
	struct server	 srv;
	struct control	*ctl;
	struct metrics	*metrics;
	struct reaper	*reaper;
	struct gen	*gen;
	int		 psfd;
	struct buf	 psin;		/* the parent's messages, bounded */
};

/*
 * The parent is the process the service manager knows (the pid file's):
 * the child's states go through it.
 */
static void
notify(struct serve *sv, const char *state)
{
	struct buf b;
	const char *error;

	if (sv->psfd < 0) {
		sd_state(state);
		return;
	}
	buf_init(&b, PRIVSEP_HDR_LEN + 64);
	if (privsep_frame_text(&b, PRIVSEP_MSG_NOTIFY, state, &error) < 0 ||
	    write(sv->psfd, buf_head(&b), buf_len(&b)) != (ssize_t)buf_len(&b))
		log_warning("privsep: cannot pass %s to the parent", state);
	buf_free(&b);
}

static int
load(const char *path, struct config **cfg_r)
{
	char err[512];

	if (config_load(path, cfg_r, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

static int
open_directory(const struct config *cfg, struct directory **dir_r)
{
	char err[512];

	if (directory_open(cfg, dir_r, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

static int
cmd_lookup(const struct config *cfg, const char *user, enum proto_id proto)
{
	struct directory *dir;
	struct username name;
	struct route *route = NULL;
	const char *error;
	char detail[256];
	enum dir_status status;

	if (username_normalise(&cfg->username, user, strlen(user), &name, &error) < 0) {
		fprintf(stderr, "%s: %s\n", user, error);
		return 1;
	}
	if (open_directory(cfg, &dir) < 0)
		return 1;
	status = directory_lookup_sync(dir, &name, proto, &route, detail, sizeof(detail));
	printf("directory:");
	for (size_t i = 0; i < cfg->directory.ntypes; i++)
		printf("%s%s", i == 0 ? " " : ", ",
		    dir_type_name(cfg->directory.type[i]));
	printf("\n");
	printf("user: %s\nlocal: %s\ndomain: %s\nprotocol: %s\nstatus: %s\n"
	    "cache: %s\nsource: %s\n", name.full, name.local,
	    name.domain[0] ? name.domain : "-", proto_name(proto),
	    dir_status_name(status), dir->cache == NULL ? "off" :
	    strncmp(detail, "cache hit", 9) == 0 ? "hit" : "miss", detail);
	if (route != NULL) {
		printf("backend_user: %s\n", route->backend_user ?
		    route->backend_user : name.full);
		for (size_t i = 0; i < route->nhosts; i++) {
			const struct route_host *h = &route->hosts[i];
			const struct backend_cfg *b = config_backend(cfg, h->host);
			unsigned port = h->port ? h->port : b != NULL && b->port[proto] ?
			    b->port[proto] : cfg->backend.port[proto];

			printf("host: %s port: %u tls: %s", h->host, port,
			    tls_mode_name(b != NULL ? b->tls : cfg->backend.tls));
			for (size_t k = 0; b != NULL && k < b->naddresses; k++)
				printf("%s%s", k == 0 ? " addresses: " : ",", b->addresses[k]);
			printf("\n");
		}
	}
	route_unref(&route);
	directory_close(&dir);
	return status == DIR_OK ? 0 : 1;
}

static int
drop_privileges(const char *user)
{
	return user[0] == '\0' ? 0 : privsep_drop(user);
}

/* Raise the descriptor limit as far as allowed; returns the soft limit. */
static unsigned
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur > 1u << 30 ? 1u << 30 : (unsigned)rl.rlim_cur;
}

static int
write_pid_file(const struct config *cfg)
{
	const char *path = cfg->daemon.pid_file;
	FILE *fp;

	if (path[0] == '\0')
		return 0;
	if ((fp = fopen(path, "w")) == NULL) {
		log_error("%s: daemon.pid_file: %s: %s", cfg->path, path,
		    strerror(errno));
		return -1;
	}
	fprintf(fp, "%d\n", (int)getpid());
	fclose(fp);
	return 0;
}

static struct gen *
reload(const char *path, struct gen *cur, struct reaper *reaper,
    struct server *srv, char *err, size_t errlen)
{
	struct config *cfg;
	struct gen *gen;

	if (config_load(path, &cfg, err, errlen) < 0 ||
	    gen_new(cfg, reaper, srv, &gen, err, errlen) < 0) {
		log_error("reload failed, keeping the running configuration: %s", err);
		return NULL;
	}
	if (cfg->nlisten != cur->cfg->nlisten || cfg->daemon.threads != cur->cfg->daemon.threads)
		log_warning("reload: listeners and threads change only on restart");
	if (strcmp(cfg->metrics.listen, cur->cfg->metrics.listen) != 0)
		log_warning("reload: metrics.listen changes only on restart");
	log_set_level(cfg->daemon.log_level);
	log_info("configuration reloaded from %s", path);
	return gen;
}

/* Listeners and the control socket: what needs root for a port below 1024. */
static int
bind_all(struct serve *sv, const struct config *cfg)
{
	char err[512];

	if (server_bind(&sv->srv, cfg, cfg->daemon.threads, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return -1;
	}
	if (cfg->daemon.control[0] != '\0' &&
	    control_open(&sv->srv, cfg->daemon.control, &sv->ctl, err,
	    sizeof(err)) < 0) {
		log_error("%s: daemon.control: %s", cfg->path, err);
		return -1;
	}
	/* It may be a privileged port too. */
	if (cfg->metrics.listen[0] != '\0' &&
	    metrics_open(&sv->srv, cfg, &sv->metrics, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return -1;
	}
	return 0;
}

/*
 * A single process binds, drops to daemon.user and writes the pid file;
 * the privileged parent did all that already for its child (split).
 */
static int
start(struct serve *sv, bool detach, bool split)
{
	const struct config *cfg = sv->gen->cfg;

	if (!split) {
		if (bind_all(sv, cfg) < 0 || drop_privileges(cfg->daemon.user) < 0)
			return -1;
		if (detach && daemon(0, 0) < 0) {
			log_error("daemon: %s", strerror(errno));
			return -1;
		}
		if (write_pid_file(cfg) < 0)
			return -1;
	}
	server_set_gen(&sv->srv, sv->gen);
	if (resolve_init(RESOLVER_THREADS) < 0 || server_start(&sv->srv, sv->gen) < 0 ||
	    (sv->ctl != NULL && control_start(sv->ctl) < 0) ||
	    (sv->metrics != NULL && metrics_start(sv->metrics) < 0)) {
		log_error("cannot start threads");
		return -1;
	}
	return 0;
}

static void
do_reload(struct serve *sv)
{
	struct gen *ng;
	char err[512];

	notify(sv, "RELOADING=1");
	ng = reload(sv->path, sv->gen, sv->reaper, &sv->srv, err, sizeof(err));
	/* The secrets live on in the generation only. */
	privsep_install(NULL);
	if (ng != NULL) {
		server_reload(&sv->srv, ng);
		server_set_gen(&sv->srv, ng);
		gen_unref(&sv->gen);
		sv->gen = ng;
	}
	server_reload_done(&sv->srv, ng != NULL ? NULL : err);
	notify(sv, "READY=1");
}

static void
ask_parent(struct serve *sv)
{
	struct buf b;
	const char *error;

	buf_init(&b, PRIVSEP_HDR_LEN);
	if (privsep_frame_text(&b, PRIVSEP_MSG_RELOAD, "", &error) < 0 ||
	    write(sv->psfd, buf_head(&b), buf_len(&b)) != (ssize_t)buf_len(&b)) {
		log_error("reload failed: cannot ask the privileged parent: %s",
		    strerror(errno));
		server_reload_done(&sv->srv, "cannot ask the privileged parent");
	}
	buf_free(&b);
}

static void
parent_message(struct serve *sv, const struct privsep_frame *m)
{
	struct privsep_files *files;
	const char *error;
	char text[1024];

	switch (m->type) {
	case PRIVSEP_MSG_FILES:
		if (privsep_files_decode(m->payload, m->len, &files, &error) < 0) {
			log_error("privsep: malformed files from the parent: %s",
			    error);
			server_reload_done(&sv->srv, error);
			return;
		}
		privsep_install(files);
		do_reload(sv);
		break;
	case PRIVSEP_MSG_RELOAD_ERROR:
		if (privsep_text_decode(m->payload, m->len, text, sizeof(text),
		    &error) < 0)
			str_copy(text, error, sizeof(text));
		log_error("reload failed, keeping the running configuration: %s",
		    text);
		server_reload_done(&sv->srv, text);
		break;
	case PRIVSEP_MSG_RELOAD:
	case PRIVSEP_MSG_NOTIFY:
		log_warning("privsep: the parent sent a child's message");
		break;
	}
}

/* The parent's messages; -1 when it is gone (or talks nonsense). */
static int
parent_input(struct serve *sv)
{
	struct privsep_frame m;
	const char *error;
	size_t used, room;
	ssize_t n;
	char *p;
	int rc;

	if (buf_reserve(&sv->psin, 65536, &p, &room) < 0) {
		log_error("privsep: the parent's message is too large");
		return -1;
	}
	n = read(sv->psfd, p, room);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0) {
		log_info("privsep: the privileged parent is gone");
		return -1;
	}
	buf_commit(&sv->psin, (size_t)n);
	while ((rc = privsep_frame_parse(buf_head(&sv->psin), buf_len(&sv->psin),
	    &m, &used, &error)) == 1) {
		parent_message(sv, &m);
		/* It held keys and passwords. */
		explicit_bzero(buf_head(&sv->psin), used);
		buf_consume(&sv->psin, used);
	}
	if (rc < 0) {
		log_error("privsep: malformed message from the parent: %s", error);
		return -1;
	}
	return 0;
}

static void
drain(struct serve *sv, const char *why)
{
	uint64_t ms = (uint64_t)sv->gen->cfg->daemon.drain * 1000;

	notify(sv, "STOPPING=1");
	log_info("%s: draining for up to %us", why, sv->gen->cfg->daemon.drain);
	control_stop(sv->ctl);
	metrics_stop(sv->metrics);
	server_drain(&sv->srv);
	if (server_wait(&sv->srv, clock_ms() + ms) < 0) {
		log_info("drain deadline passed: closing remaining sessions");
		server_stop(&sv->srv);
		server_wait(&sv->srv, 0);
	}
}

/*
 * Signals reach only the main thread, through sfd; in the child so do the
 * parent's messages.  Returns when the daemon is to stop.
 */
static void
serve(struct serve *sv, int sfd)
{
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = sfd, .events = POLLIN },
			{ .fd = sv->psfd, .events = POLLIN },
		};
		struct signalfd_siginfo si;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("poll: %s", strerror(errno));
			drain(sv, "main loop failed");
			return;
		}
		if (sv->psfd >= 0 && pfd[1].revents & (POLLIN | POLLHUP | POLLERR) &&
		    parent_input(sv) < 0) {
			drain(sv, "parent gone");
			return;
		}
		if (!(pfd[0].revents & POLLIN) ||
		    read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
			continue;
		switch (si.ssi_signo) {
		case SIGHUP:
			if (sv->psfd >= 0)
				ask_parent(sv);
			else
				do_reload(sv);
			break;
		case SIGTERM:
			drain(sv, "SIGTERM");
			return;
		case SIGINT:
			notify(sv, "STOPPING=1");
			log_info("SIGINT: stopping");
			control_stop(sv->ctl);
			metrics_stop(sv->metrics);
			server_stop(&sv->srv);
			server_wait(&sv->srv, 0);
			return;
		}
	}
}

/*
 * Privilege separation: bind and write the pid file as root, read the
 * secrets, then fork.  The parent (root) serves the child until it exits
 * and returns 1 with *rc_r; the child becomes daemon.user with the
 * secrets installed and returns 0; -1 if the split failed.
 */
static int
split(struct serve *sv, struct config *cfg, bool detach, int *rc_r)
{
	struct privsep_parent pp = { .config_path = sv->path,
	    .pid_file = cfg->daemon.pid_file, .control = cfg->daemon.control,
	    .notify = sd_state };
	struct privsep_files *files = privsep_files_new();
	struct config *again = NULL;
	const char *error;
	char err[512];
	sigset_t chld;
	pid_t parent;
	bool wrote_pid = false;
	int sp[2];

	if (getpwnam(cfg->daemon.user) == NULL) {
		log_error("daemon.user: no such user \"%s\"", cfg->daemon.user);
		goto fail;
	}
	if (bind_all(sv, cfg) < 0)
		goto fail;
	/*
	 * What the child's first generation reads, as its reloads will; before
	 * daemon() changes the directory, as a single process reads them.
	 */
	privsep_record(files);
	if (config_load(sv->path, &again, err, sizeof(err)) < 0)
		log_warning("privsep: %s", err);
	privsep_record(NULL);
	config_free(&again);
	if (privsep_files_collect(files, cfg, &error) < 0) {
		log_error("privsep: %s", error);
		goto fail;
	}
	if (detach && daemon(0, 0) < 0) {
		log_error("daemon: %s", strerror(errno));
		goto fail;
	}
	if (write_pid_file(cfg) < 0)
		goto fail;
	wrote_pid = true;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		log_error("socketpair: %s", strerror(errno));
		goto fail;
	}
	parent = getpid();
	/* Until the parent reads it from its signalfd: never lost, nor ignored. */
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	if ((pp.child = fork()) < 0) {
		log_error("fork: %s", strerror(errno));
		close(sp[0]);
		close(sp[1]);
		goto fail;
	}
	if (pp.child == 0) {
		sigprocmask(SIG_UNBLOCK, &chld, NULL);
		close(sp[0]);
		sv->psfd = sp[1];
		if (fd_set_nonblock(sv->psfd) < 0 ||
		    privsep_become(cfg->daemon.user, parent) < 0) {
			privsep_files_free(&files);
			return -1;
		}
		privsep_install(files);
		log_info("privsep: serving as %s, the privileged parent is %d",
		    cfg->daemon.user, (int)parent);
		return 0;
	}
	close(sp[1]);
	privsep_files_free(&files);
	control_disown(&sv->ctl);
	metrics_free(&sv->metrics);
	server_free(&sv->srv);
	log_info("privsep: the serving child is %d", (int)pp.child);
	pp.fd = sp[0];
	*rc_r = privsep_parent_run(&pp);
	config_free(&cfg);
	return 1;
fail:
	config_free(&again);
	privsep_files_free(&files);
	/* Ours only: a failed bind may mean that another daemon runs. */
	if (wrote_pid && cfg->daemon.pid_file[0] != '\0')
		(void)unlink(cfg->daemon.pid_file);
	return -1;
}

static int
run(const char *path, struct config *cfg, bool detach)
{
	struct serve sv = { .path = path, .psfd = -1 };
	sigset_t set;
	char err[512];
	unsigned nofile;
	bool privsep = cfg->daemon.user[0] != '\0' && geteuid() == 0;
	int sfd = -1, rc = 0;

	log_setup(cfg->daemon.log_level, cfg->daemon.log_json, detach);
	nofile = raise_fd_limit();
	/*
	 * Every thread (workers, directory, resolver, reaper) inherits this
	 * mask from here on; signals reach only this thread, through sfd.
	 */
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	buf_init(&sv.psin, PRIVSEP_HDR_LEN + PRIVSEP_MSG_MAX);
	/* Before any thread: fork and threads do not mix. */
	if (privsep) {
		int prc = 1;

		switch (split(&sv, cfg, detach, &prc)) {
		case 1:
			sasl_client_teardown();
			return prc;
		case 0:
			break;
		default:
			config_free(&cfg);
			rc = 1;
			goto out_early;
		}
	}
	if ((sfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0 ||
	    (sv.reaper = reaper_start()) == NULL) {
		log_error("cannot start threads");
		config_free(&cfg);
		rc = 1;
		goto out_early;
	}
	if (gen_new(cfg, sv.reaper, &sv.srv, &sv.gen, err, sizeof(err)) < 0) {
		log_error("%s", err);
		privsep_install(NULL);
		reaper_stop(&sv.reaper);
		rc = 1;
		goto out_early;
	}
	privsep_install(NULL);
	sv.srv.auto_connections = server_connections_for(nofile, cfg->daemon.threads);
	if (start(&sv, detach, privsep) < 0) {
		rc = 1;
		goto out;
	}
	log_info("postern %s started: %u workers, %zu listeners, directory %s, "
	    "connections %u%s", PACKAGE_VERSION, sv.srv.nworkers, cfg->nlisten,
	    sv.gen->dir->ops->name, cfg->limits.connections ? cfg->limits.connections :
	    sv.srv.auto_connections, cfg->limits.connections ? "" :
	    " (from the descriptor limit)");
	notify(&sv, "READY=1");
	serve(&sv, sfd);
out:
	/*
	 * Producers before what they post to: sessions and the workers'
	 * generations go first, then the reaper stops their directories'
	 * threads and the resolvers end; only then do the loops go.
	 */
	control_stop(sv.ctl);
	metrics_stop(sv.metrics);
	server_release(&sv.srv);
	server_set_gen(&sv.srv, NULL);
	gen_unref(&sv.gen);
	reaper_stop(&sv.reaper);
	resolve_shutdown();
out_early:
	/* After every thread that could answer into its loop. */
	control_free(&sv.ctl);
	metrics_free(&sv.metrics);
	server_free(&sv.srv);
	sasl_client_teardown();
	buf_free(&sv.psin);
	if (sfd >= 0)
		close(sfd);
	if (sv.psfd >= 0)
		close(sv.psfd);
	log_info("stopped");
	return rc;
}

/* postern ctl: one request, the records as they come, exit by the last line. */
static int
ctl_connect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = CTL_REPLY_TIMEOUT };
	int fd;

	if (str_copy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		fprintf(stderr, "postern ctl: %s: path too long\n", path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "postern ctl: cannot reach the daemon at %s: %s\n",
		    path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

static int
ctl_print(const char *line, bool json)
{
	struct ctl_field *fields;
	struct buf b;
	const char *error;
	size_t n;

	if (!json) {
		printf("%s\n", line);
		return 0;
	}
	if (ctl_parse_record(line, &fields, &n, &error) < 0) {
		fprintf(stderr, "postern ctl: malformed record (%s): %s\n", error,
		    line);
		return -1;
	}
	buf_init(&b, (size_t)1 << 30);
	if (ctl_json(&b, fields, n) == 0)
		printf("%.*s\n", (int)buf_len(&b), buf_head(&b));
	buf_free(&b);
	ctl_fields_free(&fields, n);
	return 0;
}

static int
cmd_ctl(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = POSTERN_CONFIG_FILE, *sock = NULL, *reason;
	struct config *cfg = NULL;
	struct buf req;
	bool json = false;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	FILE *fp;
	int ch, fd, rc = 2;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "+c:s:jh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 's':
			sock = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind == argc) {
		usage(stderr);
		return 1;
	}
	if (sock == NULL) {
		if (load(path, &cfg) < 0)
			return 2;
		if (cfg->daemon.control[0] == '\0') {
			fprintf(stderr, "postern ctl: %s sets no daemon.control\n", path);
			config_free(&cfg);
			return 2;
		}
		sock = cfg->daemon.control;
	}
	buf_init(&req, CTL_REQUEST_MAX - 1);
	for (int i = optind; i < argc; i++)
		if ((i > optind && buf_append(&req, " ", 1) < 0) ||
		    buf_append_str(&req, argv[i]) < 0) {
			fprintf(stderr, "postern ctl: request too long\n");
			buf_free(&req);
			config_free(&cfg);
			return 1;
		}
	req.max++;
	(void)buf_append(&req, "\n", 1);
	fd = ctl_connect(sock);
	config_free(&cfg);
	if (fd < 0) {
		buf_free(&req);
		return 2;
	}
	if (write(fd, buf_head(&req), buf_len(&req)) != (ssize_t)buf_len(&req)) {
		fprintf(stderr, "postern ctl: cannot send the request: %s\n",
		    strerror(errno));
		buf_free(&req);
		close(fd);
		return 2;
	}
	buf_free(&req);
	if ((fp = fdopen(fd, "r")) == NULL) {
		close(fd);
		return 2;
	}
	while ((len = getline(&line, &cap, fp)) > 0) {
		if (line[len - 1] != '\n')
			break;		/* cut short */
		line[len - 1] = '\0';
		switch (ctl_line_kind(line, &reason)) {
		case CTL_LINE_RECORD:
			if (ctl_print(line, json) < 0)
				rc = 1;
			continue;
		case CTL_LINE_OK:
			rc = rc == 1 ? 1 : 0;
			break;
		case CTL_LINE_ERROR:
			fprintf(stderr, "postern ctl: %s\n", reason);
			rc = 1;
			break;
		}
		goto out;
	}
	fprintf(stderr, "postern ctl: the daemon closed the connection before "
	    "the reply ended\n");
	rc = 2;
out:
	fflush(stdout);
	free(line);
	fclose(fp);
	return rc;
}

/* --check-config: the file, the certificates, and the directory for real. */
static int
check_config(const char *path, struct config *cfg)
{
	struct tls_ctxs tls;
	char err[2048];
	int rc = -1;

	log_setup(LOG_LVL_WARNING, 0, 0);
	if (tls_ctxs_new(cfg, &tls, err, sizeof(err)) == 0) {
		tls_ctxs_free(&tls);
		rc = directory_check(cfg, err, sizeof(err));
	}
	if (rc < 0)
		fprintf(stderr, "%s\n", err);
	else
		printf("%s: configuration ok\n", path);
	config_free(&cfg);
	return rc < 0 ? 1 : 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "daemon", no_argument, NULL, 'd' },
		{ "check-config", no_argument, NULL, 't' },
		{ "lookup", required_argument, NULL, 'l' },
		{ "protocol", required_argument, NULL, 'p' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = POSTERN_CONFIG_FILE, *lookup = NULL;
	char abspath[PATH_MAX];
	enum proto_id proto = PROTO_IMAP;
	bool detach = false, check = false;
	struct config *cfg;
	int ch;

	/* Peers vanish; a write to a closed socket must be an error, not death. */
	signal(SIGPIPE, SIG_IGN);
	/*
	 * libldap and we share Cyrus SASL's global state, and libldap installs
	 * its own mutex functions there when it initialises.  It must do so
	 * before anything is allocated with the default (no-op) ones, so wake
	 * libldap first, then start SASL's client side.
	 */
	{
		int v;

		(void)ldap_get_option(NULL, LDAP_OPT_PROTOCOL_VERSION, &v);
		if (sasl_client_setup() < 0) {
			fprintf(stderr, "cannot start the SASL client library\n");
			return 1;
		}
	}
	if (argc > 1 && strcmp(argv[1], "ctl") == 0) {
		log_setup(LOG_LVL_WARNING, 0, 0);
		return cmd_ctl(argc - 1, argv + 1);
	}
	while ((ch = getopt_long(argc, argv, "c:dtl:p:Vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'd':
			detach = true;
			break;
		case 't':
			check = true;
			break;
		case 'l':
			lookup = optarg;
			break;
		case 'p':
			if (strcmp(optarg, "imap") == 0)
				proto = PROTO_IMAP;
			else if (strcmp(optarg, "pop3") == 0)
				proto = PROTO_POP3;
			else if (strcmp(optarg, "sieve") == 0)
				proto = PROTO_SIEVE;
			else {
				usage(stderr);
				return 1;
			}
			break;
		case 'V':
			print_version();
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 1;
	}
	if (load(path, &cfg) < 0)
		return 1;
	if (check)
		return check_config(path, cfg);
	if (lookup != NULL) {
		int rc;

		log_setup(LOG_LVL_WARNING, 0, 0);
		rc = cmd_lookup(cfg, lookup, proto);
		config_free(&cfg);
		return rc;
	}
	/* SIGHUP reloads by name, after -d has left the working directory. */
	if (path[0] != '/' && realpath(path, abspath) != NULL)
		path = abspath;
	return run(path, cfg, detach);
}
