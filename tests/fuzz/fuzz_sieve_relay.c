/*
 * Fuzz ManageSieve's relay filter (sieve.c, proto_ops.filter) as the relay
 * drives it: the client's bytes and the backend's arrive in chunks, the
 * output buffers drain in steps, both through buffers with small bounds.
 * Input: a flag byte (chunk sizes), the client's bytes up to 0x01, then the
 * backend's.  Invariants: what reached the backend holds no command named
 * UNAUTHENTICATE, AUTHENTICATE or STARTTLS, nor a shadow line (a line a
 * store that skips a literal would run, sieve_filter.h) so named; and when
 * the filter did not refuse the stream:
 *   - it is the client's bytes less those commands' lines, empty lines
 *     (and a name cut short by the end of input), byte for byte, or a
 *     prefix of that when a refusal waited for an answer that never came
 *     (or was dropped, with all that followed, as the backend closed);
 *   - what reached the client is the backend's bytes, byte for byte, with
 *     postern's refusals between lines.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "proto.h"
#include "session.h"
#include "sieve_filter.h"
#include "util.h"

const char *const fuzz_seeds[] = {
	"\x00" "CAPABILITY\r\nUNAUTHENTICATE\r\nNOOP\r\n\x01"
	"\"IMPLEMENTATION\" \"x\"\r\n\"UNAUTHENTICATE\"\r\nOK\r\nNO \"x\"\r\n",
	"\x15" "PUTSCRIPT \"s\" {16+}\r\nUNAUTHENTICATE\r\n\r\nSTARTTLS\r\n"
	"authenticate \"PLAIN\"\r\n\x01" "OK\r\n",
	"\x2a" "SLOW\r\nUnauthenticate\r\nGETSCRIPT \"a\"\r\n\x01"
	"OK \"slow\"\r\n{5}\r\nOK\r\n\r\nOK\r\n",
	"\x3f" "  UNAUTHENTICATE \"x\" {3}\r\nabc\r\nLOGOUT\r\nUNAUTH\x01"
	"BY",
	"\x00" "X {99999999}\r\n\x01" "OK {99999999}\r\n",
	"\x05" "XFOO {16+}\r\nUNAUTHENTICATE\r\n\r\nNOOP\r\n\x01" "NO\r\n",
	"\x16" "NOOP {}\r\nNOOP\r\nX {3}\r\na\n \r\n\r\nSTARTTLS\r\n\x01"
	"NO\r\nNO\r\n{4}\r\nNO\r\n\r\n",
	"\x3c" "DIE\r\nUNAUTHENTICATE\r\nNOOP\r\n\x01" "BYE\r\n",
	NULL
};

static const char *const refused[] = { "UNAUTHENTICATE", "AUTHENTICATE",
	"STARTTLS" };
static const char *const replies[] = {
	"NO \"UNAUTHENTICATE is not available through this proxy\"\r\n",
	"NO \"Already authenticated\"\r\n",
	"NO \"STARTTLS is not available after login\"\r\n",
};

static bool
is_refused(const struct sieve_scan *sc)
{
	for (size_t i = 0; i < nitems(refused); i++)
		if (sieve_scan_name_is(sc, refused[i]))
			return true;
	return false;
}

static bool
is_refused_shadow(const struct sieve_scan *sc)
{
	for (size_t i = 0; i < nitems(refused); i++)
		if (sieve_scan_shadow_is(sc, refused[i]))
			return true;
	return false;
}

/*
 * The client's bytes less refused commands' lines, empty lines and an
 * unfinished name at the end; *had_refused_r says whether any commands
 * were refused.  -1 if the scanner or the filter refuses the stream (a
 * refused shadow line).
 */
static int
expected(const uint8_t *p, size_t len, struct buf *out, bool *had_refused_r)
{
	struct sieve_scan sc;
	enum sieve_scan_event ev;
	size_t off = 0, start = 0, used;
	bool named = false, drop = false;
	int rc;

	*had_refused_r = false;
	sieve_scan_init(&sc);
	while (off < len) {
		rc = sieve_scan_feed(&sc, (const char *)p + off, len - off, &used,
		    &ev);
		off += used;
		if (rc < 0)
			return -1;
		if (rc == 0)
			break;
		if (ev == SIEVE_SCAN_SHADOW) {
			if (is_refused_shadow(&sc))
				return -1;
			continue;
		}
		if (ev == SIEVE_SCAN_NAME) {
			named = true;
			drop = is_refused(&sc) || sc.empty;
			*had_refused_r |= is_refused(&sc);
			continue;
		}
		if (!drop && buf_append(out, p + start, off - start) < 0)
			abort();
		start = off;
		named = false;
	}
	if (named && !drop && buf_append(out, p + start, len - start) < 0)
		abort();
	return 0;
}

/* Drop the LF-ended lines that are one of the replies. */
static void
without_replies(const char *p, size_t len, struct buf *out)
{
	size_t start = 0;

	while (start < len) {
		const char *lf = memchr(p + start, '\n', len - start);
		size_t n = lf != NULL ? (size_t)(lf - (p + start)) + 1 : len - start;
		bool reply = false;

		for (size_t i = 0; i < nitems(replies); i++)
			if (n == strlen(replies[i]) &&
			    memcmp(p + start, replies[i], n) == 0)
				reply = true;
		if (!reply && buf_append(out, p + start, n) < 0)
			abort();
		start += n;
	}
}

/* Take what is queued in b, at most max bytes, into out. */
static void
drain(struct buf *b, size_t max, struct buf *out)
{
	size_t n = buf_len(b) < max ? buf_len(b) : max;

	if (n == 0)
		return;
	if (buf_append(out, buf_head(b), n) < 0)
		abort();
	buf_consume(b, n);
}

/* Feed at most max bytes of src (from *off) into b. */
static void
feed(struct buf *b, const uint8_t *src, size_t len, size_t *off, size_t max)
{
	size_t n = len - *off;

	if (n > max)
		n = max;
	if (n > buf_room(b))
		n = buf_room(b);
	if (n == 0)
		return;
	if (buf_append(b, src + *off, n) < 0)
		abort();
	*off += n;
}

static const size_t steps[] = { 1, 3, 17, 100000 };

/* Where everything stands: the same twice running means no progress. */
static void
snapshot(size_t v[8], const struct session *s, size_t ci, size_t bi,
    const struct buf *fwd, const struct buf *tocli)
{
	v[0] = ci;
	v[1] = bi;
	v[2] = buf_len(fwd);
	v[3] = buf_len(tocli);
	v[4] = buf_len(&s->client.in);
	v[5] = buf_len(&s->backend.in);
	v[6] = buf_len(&s->client.out);
	v[7] = buf_len(&s->backend.out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct session *s;
	struct buf fwd, tocli, want, a, b;
	const uint8_t *cli, *be, *sep;
	size_t clen, blen, ci = 0, bi = 0, cstep, bstep, dstep;
	const char *error = NULL;
	bool had_refused, failed = false;
	void *f;

	if (size < 1)
		return 0;
	cstep = steps[data[0] & 3];
	bstep = steps[(data[0] >> 2) & 3];
	dstep = steps[(data[0] >> 4) & 3];
	cli = data + 1;
	sep = memchr(cli, 0x01, size - 1);
	clen = sep != NULL ? (size_t)(sep - cli) : size - 1;
	be = sep != NULL ? sep + 1 : data + size;
	blen = (size_t)(data + size - be);

	s = xcalloc(1, sizeof(*s));
	buf_init(&s->client.in, 2 * SIEVE_SCAN_NAME_MAX + 8);
	buf_init(&s->client.out, 256);
	buf_init(&s->backend.in, 64);
	buf_init(&s->backend.out, 48);
	buf_init(&fwd, SIZE_MAX);
	buf_init(&tocli, SIZE_MAX);
	f = sieve_proto.filter_new(s);
	for (;;) {
		size_t before[8], after[8];

		snapshot(before, s, ci, bi, &fwd, &tocli);
		feed(&s->client.in, cli, clen, &ci, cstep);
		if (sieve_proto.filter(s, f, true, ci == clen, &error) < 0) {
			failed = true;
			break;
		}
		drain(&s->backend.out, dstep, &fwd);
		feed(&s->backend.in, be, blen, &bi, bstep);
		if (sieve_proto.filter(s, f, false, bi == blen, &error) < 0) {
			failed = true;
			break;
		}
		drain(&s->client.out, dstep, &tocli);
		snapshot(after, s, ci, bi, &fwd, &tocli);
		if (memcmp(before, after, sizeof(before)) == 0)
			break;
	}
	if (failed && error == NULL)
		abort();

	/* Nothing refused reached the backend, refused stream or not. */
	{
		struct sieve_scan sc;
		enum sieve_scan_event ev;
		size_t off = 0, used;

		sieve_scan_init(&sc);
		while (off < buf_len(&fwd)) {
			int rc = sieve_scan_feed(&sc, buf_head(&fwd) + off,
			    buf_len(&fwd) - off, &used, &ev);

			off += used;
			if (rc < 0 && !failed)
				abort();
			if (rc <= 0)
				break;
			if (ev == SIEVE_SCAN_NAME && is_refused(&sc))
				abort();
			if (ev == SIEVE_SCAN_SHADOW && is_refused_shadow(&sc))
				abort();
		}
	}
	buf_init(&want, SIZE_MAX);
	if (!failed && expected(cli, clen, &want, &had_refused) == 0) {
		/* The rest, byte for byte. */
		if (buf_len(&fwd) > buf_len(&want) || (buf_len(&fwd) > 0 &&
		    memcmp(buf_head(&fwd), buf_head(&want), buf_len(&fwd)) != 0))
			abort();
		if (!had_refused && buf_len(&fwd) != buf_len(&want))
			abort();
		/* The backend's bytes, with refusals between. */
		if (bi != blen)
			abort();
		buf_init(&a, SIZE_MAX);
		buf_init(&b, SIZE_MAX);
		if (buf_len(&tocli) > 0)
			without_replies(buf_head(&tocli), buf_len(&tocli), &a);
		without_replies((const char *)be, blen, &b);
		if (buf_len(&a) != buf_len(&b) || (buf_len(&a) > 0 &&
		    memcmp(buf_head(&a), buf_head(&b), buf_len(&a)) != 0))
			abort();
		buf_free(&a);
		buf_free(&b);
	}
	buf_free(&want);
	sieve_proto.filter_free(f);
	buf_free(&fwd);
	buf_free(&tocli);
	buf_free(&s->client.in);
	buf_free(&s->client.out);
	buf_free(&s->backend.in);
	buf_free(&s->backend.out);
	free(s);
	return 0;
}
