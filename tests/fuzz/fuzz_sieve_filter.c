/*
 * Fuzz the post-login ManageSieve scanner (sieve_filter.c).  The input is
 * scanned three ways: whole, one byte at a time, and in chunks whose sizes
 * come from the input itself.  Invariants: the three agree on every event
 * and its offset, and on the error; a call uses no more than it is given
 * and all of it unless an event or an error stops it; NAME and END
 * alternate, NAME first, with SHADOW events only between them; END follows
 * a LF; a name holds letters only, at most SIEVE_SCAN_NAME_MAX of them, and
 * a shadow line's name at least one; an empty line's NAME comes just
 * before its LF.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "sieve_filter.h"

const char *const fuzz_seeds[] = {
	"UNAUTHENTICATE\r\n",
	"  unauthenticate \"x\"\r\nNOOP\r\n",
	"PUTSCRIPT \"s\" {16+}\r\nUNAUTHENTICATE\r\n\r\nLISTSCRIPTS\r\n",
	"PUTSCRIPT \"UNAUTH\\\"ENTICATE\" {3}\r\nabc\r\nCAPABILITY\r\n",
	"{12}\r\nrequire \"x\";\r\nOK (TAG {3}\r\nabc) \"Done\"\r\nNO {2}\r\nab\r\n",
	"X {16777216+}\r\n",
	"X {99999999999999999999}\r\nY\r\n",
	"XFOO {16+}\r\nUNAUTHENTICATE\r\n\r\nNOOP {}\r\nX {+}\r\n\r\n",
	"X {5}\r\na\n  AUTHENTICATE \"PLAIN\"\r\n",
	NULL
};

#define EVENTS_MAX	4096

struct run {
	size_t	 off[EVENTS_MAX];
	int	 ev[EVENTS_MAX];	/* enum sieve_scan_event, or -1: error */
	size_t	 n;
};

/* At most SIEVE_SCAN_NAME_MAX letters, NUL-terminated. */
static bool
letters(const char *name, size_t len)
{
	if (len > SIEVE_SCAN_NAME_MAX || strlen(name) != len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((name[i] >= 'A' && name[i] <= 'Z') ||
		    (name[i] >= 'a' && name[i] <= 'z')))
			return false;
	return true;
}

static void
scan(const uint8_t *data, size_t size, const uint8_t *chunks, size_t nchunks,
    struct run *run)
{
	struct sieve_scan sc;
	enum sieve_scan_event ev;
	size_t off = 0, used, k = 0;
	int rc, last = SIEVE_SCAN_END;

	sieve_scan_init(&sc);
	run->n = 0;
	while (off < size && run->n < EVENTS_MAX) {
		size_t want = chunks == NULL ? size - off :
		    nchunks == 0 ? 1 : 1 + (size_t)(chunks[k++ % nchunks] % 64);

		if (want > size - off)
			want = size - off;
		rc = sieve_scan_feed(&sc, (const char *)data + off, want, &used,
		    &ev);
		if (used > want || (rc == 0 && used != want))
			abort();
		off += used;
		if (rc == 0)
			continue;
		run->off[run->n] = off;
		if (rc < 0) {
			if (sc.error == NULL)
				abort();
			run->ev[run->n++] = -1;
			return;
		}
		if (ev == SIEVE_SCAN_SHADOW) {
			if (last != SIEVE_SCAN_NAME || sc.shadowlen == 0 ||
			    !letters(sc.shadow, sc.shadowlen))
				abort();
			run->ev[run->n++] = (int)ev;
			continue;
		}
		if ((int)ev == last)
			abort();
		last = (int)ev;
		if (ev == SIEVE_SCAN_END && (off == 0 || data[off - 1] != '\n'))
			abort();
		if (ev == SIEVE_SCAN_NAME) {
			if (!letters(sc.name, sc.namelen))
				abort();
			/* An empty line: no name, its LF next. */
			if (sc.empty && (sc.namelen > 0 || off == size ||
			    data[off] != '\n'))
				abort();
			if (sieve_scan_name_is(&sc, "UNAUTHENTICATE") !=
			    (!sc.name_long && sc.namelen == 14 &&
			    strncasecmp(sc.name, "UNAUTHENTICATE", 14) == 0))
				abort();
		}
		run->ev[run->n++] = (int)ev;
	}
}

static bool
same(const struct run *a, const struct run *b)
{
	return a->n == b->n && memcmp(a->off, b->off, a->n * sizeof(a->off[0]))
	    == 0 && memcmp(a->ev, b->ev, a->n * sizeof(a->ev[0])) == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct run whole, bytes, chunked;

	scan(data, size, NULL, 0, &whole);
	scan(data, size, data, 0, &bytes);
	scan(data, size, data, size < 16 ? size : 16, &chunked);
	if (!same(&whole, &bytes) || !same(&whole, &chunked))
		abort();
	return 0;
}
