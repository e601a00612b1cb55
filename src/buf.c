#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"

#define BUF_MIN_ALLOC	1024

void
buf_init(struct buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->start = b->end = b->cap = 0;
}

int
buf_reserve(struct buf *b, size_t want, char **p_r, size_t *avail_r)
{
	size_t len = buf_len(b);

	if (want > buf_room(b))
		want = buf_room(b);
	if (want == 0)
		return -1;
	if (b->cap - b->end < want) {
		if (b->start > 0) {
			memmove(b->data, b->data + b->start, len);
			b->start = 0;
			b->end = len;
		}
		if (b->cap - b->end < want) {
			size_t ncap = b->cap ? b->cap : BUF_MIN_ALLOC;
			char *n;

			while (ncap - len < want)
				ncap *= 2;
			if (ncap > b->max && b->max >= len + want)
				ncap = b->max;
			if ((n = realloc(b->data, ncap)) == NULL)
				return -1;
			b->data = n;
			b->cap = ncap;
		}
	}
	*p_r = b->data + b->end;
	*avail_r = b->cap - b->end;
	if (*avail_r > buf_room(b))
		*avail_r = buf_room(b);
	return 0;
}

void
buf_commit(struct buf *b, size_t n)
{
	b->end += n;
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= buf_len(b)) {
		buf_free(b);
		return;
	}
	b->start += n;
}

int
buf_append(struct buf *b, const void *data, size_t len)
{
	char *p;
	size_t avail;

	if (len == 0)
		return 0;
	if (len > buf_room(b) || buf_reserve(b, len, &p, &avail) < 0)
		return -1;
	memcpy(p, data, len);
	buf_commit(b, len);
	return 0;
}

int
buf_append_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	size_t avail;
	char *p;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0 || (size_t)n > buf_room(b))
		return -1;
	if (n == 0)
		return 0;
	if (buf_reserve(b, (size_t)n + 1, &p, &avail) < 0 || avail <= (size_t)n) {
		/* Filled to the very maximum, the NUL vsnprintf writes has no room. */
		char *tmp = malloc((size_t)n + 1);
		int rc;

		if (tmp == NULL)
			return -1;
		vsnprintf(tmp, (size_t)n + 1, fmt, ap);
		rc = buf_append(b, tmp, (size_t)n);
		free(tmp);
		return rc;
	}
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	buf_commit(b, (size_t)n);
	return 0;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

void
buf_truncate(struct buf *b, size_t len)
{
	if (len < buf_len(b))
		b->end = b->start + len;
}

void
buf_wipe(struct buf *b)
{
	if (b->data != NULL)
		explicit_bzero(b->data, b->cap);
	buf_free(b);
}

int
buf_find_line(const struct buf *b, size_t max, size_t *len_r)
{
	size_t len = buf_len(b);
	const char *lf;

	if (len > max)
		len = max;
	if (len == 0)
		return 0;
	if ((lf = memchr(buf_head(b), '\n', len)) != NULL) {
		*len_r = (size_t)(lf - buf_head(b)) + 1;
		return 1;
	}
	return buf_len(b) >= max ? -1 : 0;
}
