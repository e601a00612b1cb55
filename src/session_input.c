/*
 * What every protocol shares before and during login, with no I/O: line
 * framing under limits.line_length, skipping the rest of an overlong line,
 * the pre-login command rate, and the bounded output buffers towards the
 * client and the backend.  The daemon (session.c) and the fuzz targets'
 * session stub both use these, so the fuzzers test the daemon's own rules.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "session.h"
#include "util.h"

static bool
session_alive(const struct session *s)
{
	return s->state != SESSION_CLOSING;
}

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

void
session_send_raw(struct session *s, const void *data, size_t len)
{
	if (!session_alive(s))
		return;
	if (buf_append(&s->client.out, data, len) < 0) {
		/* A client that does not read its replies. */
		session_close(s, "client not reading");
	}
}

void
session_send(struct session *s, const char *fmt, ...)
{
	va_list ap;
	int rc;

	if (!session_alive(s))
		return;
	va_start(ap, fmt);
	rc = buf_vprintf(&s->client.out, fmt, ap);
	va_end(ap);
	if (rc < 0)
		session_close(s, "client not reading");
}

int
session_backend_send(struct session *s, const void *data, size_t len)
{
	if (!session_alive(s) || s->backend.fd < 0)
		return -1;
	if (buf_append(&s->backend.out, data, len) < 0) {
		session_backend_failed(s, FAIL_BACKEND,
		    "login dialogue larger than the backend buffer");
		return -1;
	}
	return 0;
}

int
session_backend_printf(struct session *s, const char *fmt, ...)
{
	va_list ap;
	int rc;

	if (!session_alive(s) || s->backend.fd < 0)
		return -1;
	va_start(ap, fmt);
	rc = buf_vprintf(&s->backend.out, fmt, ap);
	va_end(ap);
	if (rc < 0) {
		session_backend_failed(s, FAIL_BACKEND,
		    "login dialogue larger than the backend buffer");
		return -1;
	}
	return 0;
}

bool
session_can_answer(const struct session *s)
{
	return s->state == SESSION_PREAUTH &&
	    buf_len(&s->client.out) < SESSION_CLIENT_BACKLOG;
}

void
session_backend_lines(struct session *s, bool (*fn)(struct session *, char *))
{
	size_t len;

	while (buf_find_line(&s->backend.in, buf_len(&s->backend.in) + 1, &len) == 1) {
		char *line = xstrndup(buf_head(&s->backend.in), len - 1);
		bool more;

		buf_consume(&s->backend.in, len);
		if (len >= 2 && line[len - 2] == '\r')
			line[len - 2] = '\0';
		more = fn(s, line);
		free(line);
		if (!more)
			return;
	}
}
