/*
 * The control socket's line protocol, as pure functions (no I/O) shared by
 * the daemon and `postern ctl`.
 *
 * The client sends one line, "VERB [ARGS...]\n".  The server answers zero
 * or more records, each a line of "key=value" pairs separated by single
 * spaces, then a final "ok" or "error: REASON" line.  A value that is
 * empty or holds a space, '"', '\' or a control byte is double-quoted with
 * backslash escapes (\" \\ \n \r \t \xHH), so no record ever carries a raw
 * CR or LF.
 */
#ifndef POSTERN_CTL_PROTO_H
#define POSTERN_CTL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* The longest request line, LF included. */
#define CTL_REQUEST_MAX		1024
/* Words in a request (the verb included). */
#define CTL_WORDS_MAX		8

/* Does the value need quotes? */
bool	ctl_needs_quote(const char *value);
/* Append value to b, quoted if it needs it.  0, or -1 if b is full. */
int	ctl_quote(struct buf *b, const char *value);

/* One record being written into a buffer. */
struct ctl_rec {
	struct buf	*b;
	bool		 started;
};

void	ctl_rec_begin(struct ctl_rec *r, struct buf *b);
int	ctl_rec_str(struct ctl_rec *r, const char *key, const char *value);
int	ctl_rec_u64(struct ctl_rec *r, const char *key, uint64_t value);
/* End the line. */
int	ctl_rec_end(struct ctl_rec *r);

struct ctl_field {
	char	*key;
	char	*value;		/* unquoted */
};

/*
 * Parse a record line (no LF) into fields.  0 with *fields_r (free with
 * ctl_fields_free) and *n_r, or -1 with a reason.
 */
int	ctl_parse_record(const char *line, struct ctl_field **fields_r,
	    size_t *n_r, const char **error_r);
void	ctl_fields_free(struct ctl_field **fieldsp, size_t n);

/*
 * Append the fields as one JSON object; a value of digits only (no
 * leading zero, at most 18 of them) becomes a number.  0 or -1 (b full).
 */
int	ctl_json(struct buf *b, const struct ctl_field *fields, size_t n);

enum ctl_line_kind {
	CTL_LINE_RECORD,
	CTL_LINE_OK,
	CTL_LINE_ERROR,		/* *reason_r points into the line */
};

enum ctl_line_kind ctl_line_kind(const char *line, const char **reason_r);

/*
 * Split a request line (no LF) in place at spaces and tabs.  0 with the
 * words, -1 if there are none, more than max, or a control byte.
 */
int	ctl_split(char *line, char **words, size_t max, size_t *n_r);

#endif
