/*
 * The client-input rules every protocol shares before login, with no I/O:
 * line framing under limits.line_length, skipping the rest of an overlong
 * line, and the pre-login command rate.  The daemon (session.c) and the
 * fuzz targets' session stub both use these, so the fuzzers test the
 * daemon's own rules.
 */
#include "autoconf.h"

#include <string.h>

#include "buf.h"
#include "config.h"
#include "session.h"

bool
session_skip_overlong(struct session *s)
{
	struct buf *in = &s->client.in;
	char *lf;

	if (!s->skipping)
		return true;
	if ((lf = memchr(buf_head(in), '\n', buf_len(in))) == NULL) {
		buf_consume(in, buf_len(in));
		return false;
	}
	buf_consume(in, (size_t)(lf - buf_head(in)) + 1);
	s->skipping = false;
	return true;
}

int
session_next_line(struct session *s, char **line_r, size_t *len_r,
    size_t *used_r)
{
	struct buf *in = &s->client.in;
	size_t max = s->cfg->limits.line_length, len;
	char *line;
	int rc;

	if (!session_skip_overlong(s))
		return 0;
	if ((rc = buf_find_line(in, max, &len)) <= 0) {
		if (rc < 0) {
			buf_consume(in, buf_len(in));
			s->skipping = true;
		}
		return rc;
	}
	line = buf_head(in);
	*used_r = len;
	line[--len] = '\0';
	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	*line_r = line;
	*len_r = len;
	return 1;
}

bool
session_pace(struct session *s, uint64_t now)
{
	uint64_t credit = s->cmd_credit +
	    (now - s->cmd_stamp_ms) * SESSION_PREAUTH_RATE;

	/* Credit is kept in thousandths of a command. */
	s->cmd_stamp_ms = now;
	s->cmd_credit = credit > SESSION_PREAUTH_BURST * 1000 ?
	    SESSION_PREAUTH_BURST * 1000 : (uint32_t)credit;
	if (s->cmd_credit < 1000)
		return false;
	s->cmd_credit -= 1000;
	return true;
}
