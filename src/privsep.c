#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "privsep.h"
#include "util.h"

/* Files. */

struct privsep_files *
privsep_files_new(void)
{
	return xcalloc(1, sizeof(struct privsep_files));
}

void
privsep_files_free(struct privsep_files **fp)
{
	struct privsep_files *f = *fp;

	if (f == NULL)
		return;
	*fp = NULL;
	for (size_t i = 0; i < f->n; i++) {
		if (f->v[i].data != NULL) {
			explicit_bzero(f->v[i].data, f->v[i].len);
			free(f->v[i].data);
		}
		free(f->v[i].path);
	}
	free(f->v);
	free(f);
}

const struct privsep_file *
privsep_files_find(const struct privsep_files *f, const char *path)
{
	for (size_t i = 0; f != NULL && i < f->n; i++)
		if (strcmp(f->v[i].path, path) == 0)
			return &f->v[i];
	return NULL;
}

int
privsep_files_add(struct privsep_files *f, const char *path, int error,
    const char *data, size_t len, const char **error_r)
{
	struct privsep_file *e;
	size_t plen = strlen(path);

	if (privsep_files_find(f, path) != NULL)
		return 0;
	if (plen == 0 || plen >= PRIVSEP_PATH_MAX) {
		*error_r = "file path empty or too long";
		return -1;
	}
	if (len > PRIVSEP_FILE_MAX) {
		*error_r = "file larger than 1 MiB";
		return -1;
	}
	if (f->n == PRIVSEP_FILES_MAX) {
		*error_r = "more than 64 files";
		return -1;
	}
	f->v = xrealloc(f->v, (f->n + 1) * sizeof(*f->v));
	e = &f->v[f->n++];
	e->path = xstrdup(path);
	e->error = error;
	e->len = error != 0 ? 0 : len;
	e->data = NULL;
	if (error == 0) {
		e->data = xmalloc(len + 1);
		memcpy(e->data, data, len);
		e->data[len] = '\0';
	}
	f->bytes += plen + e->len;
	return 0;
}

/* Read a whole regular file of at most PRIVSEP_FILE_MAX bytes. */
static int
read_disk(const char *path, char **data_r, size_t *len_r)
{
	struct stat st;
	char *data;
	size_t len = 0;
	ssize_t n;
	int fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		goto fail;
	if (S_ISDIR(st.st_mode)) {
		errno = EISDIR;
		goto fail;
	}
	data = xmalloc(PRIVSEP_FILE_MAX + 2);
	while (len <= PRIVSEP_FILE_MAX &&
	    (n = read(fd, data + len, PRIVSEP_FILE_MAX + 1 - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			saved = errno;
			free(data);
			close(fd);
			errno = saved;
			return -1;
		}
		len += (size_t)n;
	}
	close(fd);
	if (len > PRIVSEP_FILE_MAX) {
		explicit_bzero(data, len);
		free(data);
		errno = EFBIG;
		return -1;
	}
	data[len] = '\0';
	*data_r = data;
	*len_r = len;
	return 0;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

int
privsep_files_read(struct privsep_files *f, const char *path,
    const char **error_r)
{
	char *data = NULL;
	size_t len = 0;
	int rc, error = 0;

	if (path[0] == '\0' || privsep_files_find(f, path) != NULL)
		return 0;
	if (read_disk(path, &data, &len) < 0)
		error = errno != 0 ? errno : EIO;
	rc = privsep_files_add(f, path, error, data, len, error_r);
	if (data != NULL) {
		explicit_bzero(data, len);
		free(data);
	}
	return rc;
}

int
privsep_files_collect(struct privsep_files *f, const struct config *cfg,
    const char **error_r)
{
	if (privsep_files_read(f, cfg->tls.cert, error_r) < 0 ||
	    privsep_files_read(f, cfg->tls.key, error_r) < 0)
		return -1;
	for (size_t i = 0; i < cfg->tls.ncertificates; i++)
		if (privsep_files_read(f, cfg->tls.certificates[i].cert, error_r) < 0 ||
		    privsep_files_read(f, cfg->tls.certificates[i].key, error_r) < 0)
			return -1;
	if (privsep_files_read(f, cfg->directory.sql.password_file, error_r) < 0)
		return -1;
	return privsep_files_read(f, cfg->directory.ldap.bind_password_file,
	    error_r);
}

/* Framing. */

static void
put32(char *p, uint32_t v)
{
	v = htonl(v);
	memcpy(p, &v, 4);
}

static uint32_t
get32(const char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return ntohl(v);
}

static int
append32(struct buf *out, uint32_t v)
{
	char p[4];

	put32(p, v);
	return buf_append(out, p, 4);
}

int
privsep_frame_files(struct buf *out, const struct privsep_files *f,
    const char **error_r)
{
	size_t mark = buf_len(out), len = 4, avail;
	char *q;

	for (size_t i = 0; i < f->n; i++)
		len += 12 + strlen(f->v[i].path) + f->v[i].len;
	if (len > PRIVSEP_MSG_MAX) {
		*error_r = "the files are larger than a message (4 MiB)";
		return -1;
	}
	/* Room for all of it at once: no copy of a secret left by a realloc. */
	if (buf_reserve(out, PRIVSEP_HDR_LEN + len, &q, &avail) < 0 ||
	    avail < PRIVSEP_HDR_LEN + len)
		goto full;
	if (append32(out, PRIVSEP_MSG_FILES) < 0 || append32(out, (uint32_t)len) < 0 ||
	    append32(out, (uint32_t)f->n) < 0)
		goto full;
	for (size_t i = 0; i < f->n; i++) {
		const struct privsep_file *e = &f->v[i];
		size_t plen = strlen(e->path);

		if (append32(out, (uint32_t)plen) < 0 ||
		    buf_append(out, e->path, plen) < 0 ||
		    append32(out, (uint32_t)e->error) < 0 ||
		    append32(out, (uint32_t)e->len) < 0 ||
		    buf_append(out, e->data, e->len) < 0)
			goto full;
	}
	return 0;
full:
	buf_truncate(out, mark);
	*error_r = "message buffer full";
	return -1;
}

int
privsep_frame_text(struct buf *out, enum privsep_msg type, const char *text,
    const char **error_r)
{
	size_t mark = buf_len(out), len = strlen(text);

	if (len > PRIVSEP_MSG_MAX) {
		*error_r = "text larger than a message";
		return -1;
	}
	if (append32(out, type) < 0 || append32(out, (uint32_t)len) < 0 ||
	    buf_append(out, text, len) < 0) {
		buf_truncate(out, mark);
		*error_r = "message buffer full";
		return -1;
	}
	return 0;
}

int
privsep_frame_parse(const char *p, size_t len, struct privsep_frame *frame_r,
    size_t *used_r, const char **error_r)
{
	uint32_t type, plen;

	if (len < PRIVSEP_HDR_LEN)
		return 0;
	type = get32(p);
	plen = get32(p + 4);
	if (type < PRIVSEP_MSG_FILES || type > PRIVSEP_MSG_NOTIFY) {
		*error_r = "unknown message type";
		return -1;
	}
	if (plen > PRIVSEP_MSG_MAX) {
		*error_r = "message larger than 4 MiB";
		return -1;
	}
	if (len - PRIVSEP_HDR_LEN < plen)
		return 0;
	frame_r->type = (enum privsep_msg)type;
	frame_r->payload = p + PRIVSEP_HDR_LEN;
	frame_r->len = plen;
	*used_r = PRIVSEP_HDR_LEN + plen;
	return 1;
}

/* Take n bytes off the front of [*p, *p + *left); -1 if there are fewer. */
static int
take(const char **p, size_t *left, size_t n, const char **out_r)
{
	if (*left < n)
		return -1;
	*out_r = *p;
	*p += n;
	*left -= n;
	return 0;
}

static int
take32(const char **p, size_t *left, uint32_t *v_r)
{
	const char *q;

	if (take(p, left, 4, &q) < 0)
		return -1;
	*v_r = get32(q);
	return 0;
}

int
privsep_files_decode(const char *p, size_t len, struct privsep_files **files_r,
    const char **error_r)
{
	struct privsep_files *f = privsep_files_new();
	uint32_t count;

	if (take32(&p, &len, &count) < 0) {
		*error_r = "truncated file count";
		goto fail;
	}
	if (count > PRIVSEP_FILES_MAX) {
		*error_r = "more than 64 files";
		goto fail;
	}
	for (uint32_t i = 0; i < count; i++) {
		const char *path, *data;
		uint32_t plen, error, dlen;
		char name[PRIVSEP_PATH_MAX];

		if (take32(&p, &len, &plen) < 0 || plen >= PRIVSEP_PATH_MAX ||
		    take(&p, &len, plen, &path) < 0 || take32(&p, &len, &error) < 0 ||
		    take32(&p, &len, &dlen) < 0 || take(&p, &len, dlen, &data) < 0) {
			*error_r = "truncated or oversized file entry";
			goto fail;
		}
		if (plen == 0 || memchr(path, '\0', plen) != NULL) {
			*error_r = "empty path or NUL in a path";
			goto fail;
		}
		if (error > INT32_MAX || (error != 0 && dlen != 0)) {
			*error_r = "bad read status";
			goto fail;
		}
		memcpy(name, path, plen);
		name[plen] = '\0';
		if (privsep_files_find(f, name) != NULL) {
			*error_r = "a path sent twice";
			goto fail;
		}
		if (privsep_files_add(f, name, (int)error, data, dlen, error_r) < 0)
			goto fail;
	}
	if (len != 0) {
		*error_r = "trailing bytes after the files";
		goto fail;
	}
	*files_r = f;
	return 0;
fail:
	privsep_files_free(&f);
	return -1;
}

int
privsep_text_decode(const char *p, size_t len, char *out, size_t size,
    const char **error_r)
{
	if (len >= size || memchr(p, '\0', len) != NULL) {
		*error_r = "text too long or with a NUL";
		return -1;
	}
	memcpy(out, p, len);
	out[len] = '\0';
	return 0;
}

/*
 * The process-wide file source.  Written only by the main thread between
 * generations; the mutex makes a read from another thread safe too.
 */
static pthread_mutex_t source_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct privsep_files *source_serve;
static struct privsep_files *source_record;

void
privsep_install(struct privsep_files *f)
{
	struct privsep_files *old;

	pthread_mutex_lock(&source_mtx);
	old = source_serve;
	source_serve = f;
	pthread_mutex_unlock(&source_mtx);
	privsep_files_free(&old);
}

void
privsep_record(struct privsep_files *f)
{
	pthread_mutex_lock(&source_mtx);
	source_record = f;
	pthread_mutex_unlock(&source_mtx);
}

int
privsep_read(const char *path, char **data_r, size_t *len_r)
{
	const struct privsep_file *e;
	const char *error;
	int rc = 0;

	pthread_mutex_lock(&source_mtx);
	if ((e = privsep_files_find(source_serve, path)) != NULL) {
		if (e->error != 0) {
			errno = e->error;
			rc = -1;
		} else {
			*data_r = xmalloc(e->len + 1);
			memcpy(*data_r, e->data, e->len + 1);
			*len_r = e->len;
		}
	} else if ((rc = read_disk(path, data_r, len_r)) == 0) {
		if (source_record != NULL &&
		    privsep_files_add(source_record, path, 0, *data_r, *len_r,
		    &error) < 0)
			log_warning("privsep: %s: %s", path, error);
	} else if (source_record != NULL) {
		int saved = errno;

		if (privsep_files_add(source_record, path, saved, NULL, 0,
		    &error) < 0)
			log_warning("privsep: %s: %s", path, error);
		errno = saved;
	}
	pthread_mutex_unlock(&source_mtx);
	return rc;
}

/*
 * A FILE over a private copy: fmemopen'd memory must outlive the stream,
 * so the copy is handed to a cookie stream that frees (and wipes) it on
 * fclose.
 */
struct memfile {
	char	*data;
	size_t	 len;
	size_t	 off;
};

static ssize_t
memfile_read(void *cookie, char *buf, size_t size)
{
	struct memfile *m = cookie;
	size_t n = m->len - m->off < size ? m->len - m->off : size;

	memcpy(buf, m->data + m->off, n);
	m->off += n;
	return (ssize_t)n;
}

static int
memfile_close(void *cookie)
{
	struct memfile *m = cookie;

	explicit_bzero(m->data, m->len);
	free(m->data);
	free(m);
	return 0;
}

FILE *
privsep_fopen(const char *path)
{
	static const cookie_io_functions_t io = {
		.read = memfile_read,
		.close = memfile_close,
	};
	struct memfile *m;
	FILE *fp;
	bool plain;

	pthread_mutex_lock(&source_mtx);
	plain = source_serve == NULL && source_record == NULL;
	pthread_mutex_unlock(&source_mtx);
	if (plain)
		return fopen(path, "re");
	m = xcalloc(1, sizeof(*m));
	if (privsep_read(path, &m->data, &m->len) < 0) {
		free(m);
		return NULL;
	}
	if ((fp = fopencookie(m, "r", io)) == NULL)
		memfile_close(m);
	return fp;
}

/* The child. */

int
privsep_drop(const char *user)
{
	struct passwd *pw;

	if ((pw = getpwnam(user)) == NULL) {
		log_error("daemon.user: no such user \"%s\"", user);
		return -1;
	}
	if (setgroups(0, NULL) < 0 || initgroups(pw->pw_name, pw->pw_gid) < 0 ||
	    setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
		log_error("cannot become user %s: %s", user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0) {
		log_error("privileges were not dropped");
		return -1;
	}
	return 0;
}

int
privsep_become(const char *user, pid_t parent)
{
	if (privsep_drop(user) < 0)
		return -1;
	/* Cleared by setuid: set after it.  The parent may be gone already. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent) {
		log_error("the privileged parent is gone");
		return -1;
	}
	return 0;
}

/* The parent. */

struct parent {
	const struct privsep_parent *pp;
	struct buf	 in;
	struct buf	 out;		/* one message on its way to the child */
	int		 fd;		/* -1 once the child closed its end */
	int		 status;
	bool		 exited;
	bool		 reload;	/* asked while a message was on its way */
};

/* Write what the child takes now; the rest waits for POLLOUT. */
static void
parent_flush(struct parent *p)
{
	while (p->fd >= 0 && buf_len(&p->out) > 0) {
		ssize_t n = write(p->fd, buf_head(&p->out), buf_len(&p->out));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			log_error("privsep: cannot send to the child: %s",
			    n < 0 ? strerror(errno) : "closed");
			buf_wipe(&p->out);
			return;
		}
		/* Sent bytes held secrets too. */
		explicit_bzero(buf_head(&p->out), (size_t)n);
		buf_consume(&p->out, (size_t)n);
	}
}

/*
 * Read the configuration and what it names again, as root, and send it.
 * The configuration is parsed here only to learn which files to read; the
 * child parses it again and reports any error, as a single process would.
 */
static void
parent_reload(struct parent *p)
{
	struct privsep_files *f;
	struct config *cfg = NULL;
	const char *error = NULL;
	char err[512];

	/* One message at a time: the next reload reads the files when it is out. */
	if (buf_len(&p->out) > 0) {
		p->reload = true;
		return;
	}
	p->reload = false;
	f = privsep_files_new();
	log_info("privsep: reading %s and its secret files",
	    p->pp->config_path);
	privsep_record(f);
	if (config_load(p->pp->config_path, &cfg, err, sizeof(err)) == 0) {
		if (privsep_files_collect(f, cfg, &error) < 0)
			log_warning("privsep: %s", error);
		config_free(&cfg);
	}
	privsep_record(NULL);
	if (error != NULL || privsep_frame_files(&p->out, f, &error) < 0) {
		char why[600];

		snprintf(why, sizeof(why), "the files to send: %s", error);
		log_error("privsep: %s", why);
		(void)privsep_frame_text(&p->out, PRIVSEP_MSG_RELOAD_ERROR, why,
		    &error);
	}
	privsep_files_free(&f);
	parent_flush(p);
}

static void
parent_message(struct parent *p, const struct privsep_frame *m)
{
	char text[64];
	const char *error;

	switch (m->type) {
	case PRIVSEP_MSG_RELOAD:
		parent_reload(p);
		break;
	case PRIVSEP_MSG_NOTIFY:
		if (privsep_text_decode(m->payload, m->len, text, sizeof(text),
		    &error) < 0)
			log_warning("privsep: notify from the child: %s", error);
		else if (strcmp(text, "READY=1") != 0 &&
		    strcmp(text, "RELOADING=1") != 0 &&
		    strcmp(text, "STOPPING=1") != 0)
			log_warning("privsep: the child asked to notify an "
			    "unknown state");
		else if (p->pp->notify != NULL)
			p->pp->notify(text);
		break;
	case PRIVSEP_MSG_FILES:
	case PRIVSEP_MSG_RELOAD_ERROR:
		log_warning("privsep: the child sent a parent's message");
		break;
	}
}

/* What the child sent: whole messages are handled, the rest waits. */
static void
parent_input(struct parent *p)
{
	struct privsep_frame m;
	const char *error;
	size_t used;
	char *q;
	size_t room;
	ssize_t n;
	int rc;

	if (buf_reserve(&p->in, PRIVSEP_HDR_LEN + PRIVSEP_CHILD_MSG_MAX, &q,
	    &room) < 0) {
		log_error("privsep: the child's message is too large");
		goto gone;
	}
	n = read(p->fd, q, room);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0)
		goto gone;
	buf_commit(&p->in, (size_t)n);
	while ((rc = privsep_frame_parse(buf_head(&p->in), buf_len(&p->in), &m,
	    &used, &error)) == 1) {
		parent_message(p, &m);
		buf_consume(&p->in, used);
	}
	if (rc == 0)
		return;
	log_error("privsep: malformed message from the child: %s", error);
gone:
	/* The child is on its way out; its exit ends us. */
	close(p->fd);
	p->fd = -1;
	buf_free(&p->in);
	buf_wipe(&p->out);
}

static void
parent_signal(struct parent *p, int sfd)
{
	struct signalfd_siginfo si;
	int status;

	if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
		return;
	switch (si.ssi_signo) {
	case SIGHUP:
		parent_reload(p);
		break;
	case SIGTERM:
	case SIGINT:
		log_info("privsep: %s: passing it to the child",
		    si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
		(void)kill(p->pp->child, (int)si.ssi_signo);
		break;
	case SIGCHLD:
		if (waitpid(p->pp->child, &status, WNOHANG) == p->pp->child) {
			p->exited = true;
			p->status = WIFEXITED(status) ? WEXITSTATUS(status) :
			    WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 1;
			if (WIFSIGNALED(status))
				log_error("privsep: the child died of signal %d",
				    WTERMSIG(status));
		}
		break;
	}
}

static void
remove_socket(const char *path)
{
	struct stat st;

	if (path[0] != '\0' && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		(void)unlink(path);
}

int
privsep_parent_run(const struct privsep_parent *pp)
{
	struct parent p = { .pp = pp, .fd = pp->fd };
	sigset_t set;
	int sfd = -1;

	/* The child has only small things to say: a larger frame ends it. */
	buf_init(&p.in, PRIVSEP_HDR_LEN + PRIVSEP_CHILD_MSG_MAX);
	buf_init(&p.out, PRIVSEP_HDR_LEN + PRIVSEP_MSG_MAX);
	/* Blocked by the caller before the fork: an early exit is not lost. */
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (fd_set_nonblock(p.fd) < 0 ||
	    (sfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0) {
		log_error("privsep: %s", strerror(errno));
		(void)kill(pp->child, SIGTERM);
		p.status = 1;
	}
	while (sfd >= 0 && !p.exited) {
		struct pollfd pfd[2] = {
			{ .fd = sfd, .events = POLLIN },
			{ .fd = p.fd, .events = POLLIN |
			    (buf_len(&p.out) > 0 ? POLLOUT : 0) },
		};

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("privsep: poll: %s", strerror(errno));
			(void)kill(pp->child, SIGTERM);
			p.status = 1;
			break;
		}
		if (pfd[0].revents & POLLIN)
			parent_signal(&p, sfd);
		if (p.fd >= 0 && pfd[1].revents & (POLLIN | POLLHUP | POLLERR))
			parent_input(&p);
		if (p.fd >= 0 && pfd[1].revents & POLLOUT)
			parent_flush(&p);
		if (p.reload && buf_len(&p.out) == 0)
			parent_reload(&p);
	}
	if (sfd >= 0)
		close(sfd);
	if (p.fd >= 0)
		close(p.fd);
	buf_free(&p.in);
	buf_wipe(&p.out);
	buf_free(&p.out);
	/* Waiting for a child that got SIGTERM above. */
	if (!p.exited)
		(void)waitpid(pp->child, NULL, 0);
	if (pp->pid_file[0] != '\0' && unlink(pp->pid_file) < 0 && errno != ENOENT)
		log_warning("pid_file %s: %s", pp->pid_file, strerror(errno));
	remove_socket(pp->control);
	log_info("privsep: stopped, the child's exit status was %d", p.status);
	return p.status;
}
