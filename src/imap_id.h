/*
 * The IMAP ID command (RFC 2971): the client's field/value list, checked
 * and kept, and the list postern sends to an ID-capable backend.  Fields a
 * backend trusts only from a proxy (every "x-" field: x-originating-ip,
 * x-connected-ip, x-session-id, x-forward-*, ...) are postern's alone: a
 * client's are dropped, so nothing a client sends is forwarded as if the
 * proxy had vouched for it.  Pure functions; no I/O.
 */
#ifndef POSTERN_IMAP_ID_H
#define POSTERN_IMAP_ID_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "imap_parse.h"

/* RFC 2971 section 3.3: the most a peer may send. */
#define IMAP_ID_PAIRS_MAX	30
#define IMAP_ID_FIELD_MAX	30
#define IMAP_ID_VALUE_MAX	1024
/* The most an "ID (...)" parameter list sent to a backend takes. */
#define IMAP_ID_WIRE_MAX	(36 * 1024)

struct imap_id_pair {
	char	*field;
	char	*value;		/* NULL: NIL */
};

/* A client's ID list: the pairs worth forwarding, in the client's order. */
struct imap_id {
	struct imap_id_pair	 pairs[IMAP_ID_PAIRS_MAX];
	size_t			 npairs;
};

/*
 * Check the arguments of an ID command (NIL, or a parenthesised list of
 * field/value pairs: string fields, nstring values) and keep what may be
 * forwarded: reserved fields, repeated fields and values that a quoted
 * string cannot carry (control characters, invalid UTF-8) are dropped.
 * 0, or -1 with the reason for a BAD reply (odd list, wrong types, nested
 * lists, more than 30 pairs, a field over 30 or a value over 1024 octets).
 * Replaces what *id held.
 */
int	imap_id_parse(const struct imap_arg *args, size_t nargs,
	    struct imap_id *id, const char **error_r);
void	imap_id_clear(struct imap_id *id);

/* Is the field one only a proxy may set ("x-" anything, any case)? */
bool	imap_id_reserved(const char *field);

/*
 * Append an ID parameter list to b: `ours` first, then the client's pairs
 * (if any) while the list stays within IMAP_ID_PAIRS_MAX pairs and
 * IMAP_ID_WIRE_MAX bytes.  -1 if even `ours` does not fit in b.
 */
int	imap_id_format(struct buf *b, const struct imap_id_pair *ours,
	    size_t nours, const struct imap_id *client);

#endif
