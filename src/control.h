/*
 * The control socket (daemon.control): a unix stream socket, owner-only,
 * served by a thread with its own loop.  Commands that touch sessions are
 * posted to every worker, each answers for its own sessions, and the
 * control thread adds the answers up before it replies; workers never
 * share their session lists.  The protocol is in ctl_proto.h.
 */
#ifndef POSTERN_CONTROL_H
#define POSTERN_CONTROL_H

#include <stddef.h>

struct server;
struct control;

/* Control clients served at once; more are told so and closed. */
#define CONTROL_CLIENTS_MAX	16
/* A client that sends no complete request in this long is closed. */
#define CONTROL_IDLE_MS		10000
/* A command's whole run (reload waits up to CONTROL_RELOAD_MS). */
#define CONTROL_COMMAND_MS	30000
#define CONTROL_RELOAD_MS	10000

/*
 * Bind the socket at path, mode 0600.  A socket file nobody answers on is
 * stale and replaced; one that answers belongs to a running daemon and
 * makes this fail.  -1 with a message in err.
 */
int	control_open(struct server *srv, const char *path,
	    struct control **ctl_r, char *err, size_t errlen);
/* Start the control thread.  0 or -1. */
int	control_start(struct control *ctl);
/*
 * Stop the thread: clients are closed, lookups cancelled, the
 * generations it held dropped.  Before the workers and directories stop.
 */
void	control_stop(struct control *ctl);
/*
 * Remove the socket and free everything.  After the workers' loops ran
 * their last tasks (server_release), since their answers come here.
 */
void	control_free(struct control **ctlp);
/*
 * Free it without removing the socket file: a process that hands the
 * socket to another (the privileged parent, after the fork) does this.
 */
void	control_disown(struct control **ctlp);

#endif
