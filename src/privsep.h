/*
 * Privilege separation.  With daemon.user set and started as root, the
 * daemon is two processes: a small privileged parent that binds, writes
 * the pid file and reads the configuration and every secret file it names,
 * and the serving child, which runs as daemon.user.  On SIGHUP (or when
 * the child asks, after `postern ctl reload`) the parent reads the files
 * again and sends their contents to the child over a socketpair; the child
 * builds the new generation from them.  See doc/design.md, "Privileges".
 *
 * The files travel as a `struct privsep_files`: path, errno of the read
 * (0 when it worked) and contents.  Inside the child they are installed
 * process-wide, and privsep_fopen() / privsep_read() serve a path from
 * them before going to the disk, so the config loader, the TLS setup and
 * the LDAP password reader see the parent's copy without knowing of it.
 */
#ifndef POSTERN_PRIVSEP_H
#define POSTERN_PRIVSEP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "buf.h"

struct config;

/* Largest file the parent reads for the child. */
#define PRIVSEP_FILE_MAX	(1024 * 1024)
/* Most files in one generation. */
#define PRIVSEP_FILES_MAX	64
/* Longest path of one of them. */
#define PRIVSEP_PATH_MAX	4096
/* Largest message payload on the socketpair. */
#define PRIVSEP_MSG_MAX		(4 * 1024 * 1024)
/* Largest payload the parent takes from the child (a state, a request). */
#define PRIVSEP_CHILD_MSG_MAX	256
/* Frame header: type and payload length, 32 bits each, network order. */
#define PRIVSEP_HDR_LEN		8

enum privsep_msg {
	PRIVSEP_MSG_FILES = 1,	/* parent: a new generation's files, reload */
	PRIVSEP_MSG_RELOAD_ERROR,	/* parent: no reload, text says why */
	PRIVSEP_MSG_RELOAD,	/* child: please reload (ctl reload, SIGHUP) */
	PRIVSEP_MSG_NOTIFY,	/* child: a state for sd_notify, as text */
};

struct privsep_file {
	char	*path;
	int	 error;		/* errno of the parent's read, 0 if read */
	char	*data;		/* NUL-terminated beyond len; NULL on error */
	size_t	 len;
};

struct privsep_files {
	struct privsep_file	*v;
	size_t			 n;
	size_t			 bytes;	/* sum of paths and contents */
};

struct privsep_frame {
	enum privsep_msg	 type;
	const char		*payload;
	size_t			 len;
};

struct privsep_files *privsep_files_new(void);
/* Wipes the contents (they are keys and passwords); sets *fp to NULL. */
void	privsep_files_free(struct privsep_files **fp);
/*
 * Add one path with its contents, or with the errno that reading it gave.
 * A path already there is not added twice.  -1 past PRIVSEP_FILES_MAX,
 * PRIVSEP_PATH_MAX or PRIVSEP_FILE_MAX, with a reason.
 */
int	privsep_files_add(struct privsep_files *f, const char *path, int error,
	    const char *data, size_t len, const char **error_r);
/* Read path from the disk into f (an unreadable file is kept as its errno). */
int	privsep_files_read(struct privsep_files *f, const char *path,
	    const char **error_r);
const struct privsep_file *privsep_files_find(const struct privsep_files *f,
	    const char *path);
/*
 * The secret files that cfg names (TLS certificates and keys, the LDAP
 * bind password file), read into f.  The configuration file itself and
 * what its loader reads are recorded with privsep_record().
 */
int	privsep_files_collect(struct privsep_files *f, const struct config *cfg,
	    const char **error_r);

/* Framing: append one message to out (bounded by out's maximum). */
int	privsep_frame_files(struct buf *out, const struct privsep_files *f,
	    const char **error_r);
int	privsep_frame_text(struct buf *out, enum privsep_msg type,
	    const char *text, const char **error_r);
/*
 * Parse the frame at the start of p: 1 with *frame_r and *used_r, 0 when
 * more bytes are needed, -1 (unknown type, payload over PRIVSEP_MSG_MAX)
 * with a reason.  The payload points into p.
 */
int	privsep_frame_parse(const char *p, size_t len,
	    struct privsep_frame *frame_r, size_t *used_r, const char **error_r);
/* A PRIVSEP_MSG_FILES payload back into files; -1 if malformed. */
int	privsep_files_decode(const char *p, size_t len,
	    struct privsep_files **files_r, const char **error_r);
/* A text payload as a string of at most size - 1 bytes; -1 if malformed. */
int	privsep_text_decode(const char *p, size_t len, char *out, size_t size,
	    const char **error_r);

/*
 * Process-wide file source.  privsep_install() (child) serves paths from
 * f, which it takes over (NULL: the disk again).  privsep_record()
 * (parent) keeps reading the disk but adds what is read to f, which stays
 * the caller's (NULL: stop recording).
 */
void	privsep_install(struct privsep_files *f);
void	privsep_record(struct privsep_files *f);
/* fopen(path, "r") through the file source; NULL with errno. */
FILE	*privsep_fopen(const char *path);
/*
 * A whole file (at most PRIVSEP_FILE_MAX) through the file source, in a
 * malloc'd NUL-terminated copy for the caller to wipe and free; -1 with
 * errno.
 */
int	privsep_read(const char *path, char **data_r, size_t *len_r);

/* The privileged parent. */
struct privsep_parent {
	const char	*config_path;
	const char	*pid_file;	/* removed on exit ("" none) */
	const char	*control;	/* removed on exit ("" none) */
	pid_t		 child;
	int		 fd;		/* our end of the socketpair */
	/* sd_notify on the service manager's side; may be NULL. */
	void		(*notify)(const char *state);
};

/*
 * Serve the child until it exits: forward SIGTERM and SIGINT, read the
 * files again on SIGHUP or on the child's request.  Returns the exit
 * status for the process (the child's).
 */
int	privsep_parent_run(const struct privsep_parent *pp);

/*
 * Become user: setgroups, initgroups, setgid, setuid, then verified that
 * neither uid nor gid 0 can be regained.  0 or -1 (logged).
 */
int	privsep_drop(const char *user);
/* The child: privsep_drop(), and SIGTERM when the parent dies. */
int	privsep_become(const char *user, pid_t parent);

#endif
