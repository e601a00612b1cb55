/*
 * Byte buffer with a hard maximum.  Storage is allocated on first use and
 * released when the buffer drains, so an idle connection holds no buffer
 * memory.  Readable bytes are [head, head + len).
 */
#ifndef POSTERN_BUF_H
#define POSTERN_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char	*data;
	size_t	 start;		/* offset of the first unread byte */
	size_t	 end;		/* offset one past the last byte */
	size_t	 cap;		/* allocated size */
	size_t	 max;		/* hard maximum of unread bytes */
};

/* Set the maximum; allocates nothing. */
void	buf_init(struct buf *b, size_t max);
/* Release storage; the buffer stays usable (empty). */
void	buf_free(struct buf *b);

static inline size_t
buf_len(const struct buf *b)
{
	return b->end - b->start;
}

static inline char *
buf_head(const struct buf *b)
{
	return b->data + b->start;
}

/* Room left before the maximum. */
static inline size_t
buf_room(const struct buf *b)
{
	return b->max - buf_len(b);
}

/*
 * Make at least `want` (clamped to the room left) contiguous bytes writable
 * at the tail and return them through p_r/avail_r.  -1 when the buffer is
 * full (or out of memory).
 */
int	buf_reserve(struct buf *b, size_t want, char **p_r, size_t *avail_r);
/* Account n bytes written into reserved space. */
void	buf_commit(struct buf *b, size_t n);
/* Drop n bytes from the head; releases storage when empty. */
void	buf_consume(struct buf *b, size_t n);
/* Append; -1 if it would pass the maximum. */
int	buf_append(struct buf *b, const void *data, size_t len);
int	buf_append_str(struct buf *b, const char *s);
/*
 * Format straight into the buffer, however long the text: -1 (nothing
 * appended) if it would pass the maximum.
 */
int	buf_printf(struct buf *b, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
int	buf_vprintf(struct buf *b, const char *fmt, va_list ap)
	    __attribute__((format(printf, 2, 0)));
/* Drop bytes from the tail so that len are left (undo an append). */
void	buf_truncate(struct buf *b, size_t len);
/* Overwrite the readable bytes with zeros (they held a secret), then drop them. */
void	buf_wipe(struct buf *b);

/*
 * Find a line ending in LF within the first `max` bytes.  Returns 1 with
 * *len_r = bytes up to and including LF, 0 when more input is needed, -1
 * when `max` bytes hold no LF (the line is too long).
 */
int	buf_find_line(const struct buf *b, size_t max, size_t *len_r);

#endif
