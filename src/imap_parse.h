/*
 * Incremental IMAP command parser for the pre-login commands: a tag, a
 * command name and arguments that are atoms, quoted strings (with \" and \\
 * escapes), synchronising {n} and non-synchronising {n+} literals, and
 * parenthesised lists (for ID).  It does no I/O: feed it bytes as they come,
 * in pieces of any size, down to one byte at a time.
 *
 * Every command (line plus literal contents) must fit in `max` bytes.  A
 * literal that would not fit is refused from its header, before the
 * continuation request, so the client never sends it.
 *
 * ManageSieve (RFC 5804) shares the grammar without the tag: a parser set
 * up with imap_parser_init_untagged() starts each line at the command
 * name, and takes every literal as non-synchronising ({n} as {n+}), since
 * that protocol has no continuation request for a client to wait for.
 */
#ifndef POSTERN_IMAP_PARSE_H
#define POSTERN_IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#define IMAP_TAG_MAX	64
#define IMAP_CMD_MAX	32
#define IMAP_ARGS_MAX	72	/* ID may carry 30 field/value pairs */
#define IMAP_DEPTH_MAX	4

enum imap_parse_result {
	IMAP_PARSE_ERROR = -1,	/* see error/fatal; reply BAD with tag */
	IMAP_PARSE_MORE = 0,	/* all input consumed, command incomplete */
	IMAP_PARSE_DONE = 1,	/* a whole command is ready */
	IMAP_PARSE_LITERAL = 2,	/* send "+ ..." now: a {n} literal follows */
};

enum imap_arg_type {
	IMAP_ARG_ATOM,
	IMAP_ARG_STRING,	/* quoted string or literal */
	IMAP_ARG_LIST_START,
	IMAP_ARG_LIST_END,
};

struct imap_arg {
	enum imap_arg_type	 type;
	const char		*str;	/* NUL-terminated; may hold NUL if literal */
	size_t			 len;
	bool			 literal;
};

struct imap_parser {
	size_t		 max;
	int		 state;
	size_t		 used;		/* bytes of this command so far */
	char		 tag[IMAP_TAG_MAX + 1];
	size_t		 taglen;
	char		 cmd[IMAP_CMD_MAX + 1];
	size_t		 cmdlen;
	char		*arena;		/* argument bytes, grown up to `max` */
	size_t		 arenalen;
	size_t		 arenacap;
	size_t		 argstart;	/* arena offset of the open argument */
	struct imap_arg	 args[IMAP_ARGS_MAX];
	size_t		 nargs;
	int		 depth;
	unsigned long long litlen;
	unsigned	 litdigits;
	size_t		 litleft;
	bool		 litplus;
	char		 skiptail[16];	/* last bytes of a line being skipped */
	size_t		 skiplen;
	const char	*error;		/* reason, for the BAD reply */
	bool		 fatal;		/* the stream cannot be resynchronised */
	bool		 untagged;	/* ManageSieve: no tag, literals never wait */
	/*
	 * Lines hold arguments only (a ManageSieve SASL response); takes
	 * effect at the next imap_parser_reset().
	 */
	bool		 args_only;
};

void	imap_parser_init(struct imap_parser *p, size_t max);
/* The same for ManageSieve commands: no tag, no synchronising literals. */
void	imap_parser_init_untagged(struct imap_parser *p, size_t max);
/* Forget the last command (after DONE or a non-fatal ERROR). */
void	imap_parser_reset(struct imap_parser *p);
void	imap_parser_free(struct imap_parser *p);

/*
 * Consume bytes from data[0..len); *consumed_r tells how many.  Call again
 * with the rest after handling DONE, LITERAL or a non-fatal ERROR.  After
 * ERROR the parser discards the rest of the offending line by itself.
 */
enum imap_parse_result imap_parser_feed(struct imap_parser *p,
	    const char *data, size_t len, size_t *consumed_r);

/* True while the parser is discarding the remainder of a bad line. */
bool	imap_parser_skipping(const struct imap_parser *p);

#endif
