#include "autoconf.h"

#include <string.h>
#include <strings.h>

#include "sieve_filter.h"
#include "util.h"

/*
 * A LF ends the line anywhere but inside a literal: quoted strings cannot
 * hold CR or LF (RFC 5804 4), and a server that finds one ends the command
 * there as well, so the two sides stay in step on malformed input too.
 */
enum scan_state {
	SCAN_NEXT,		/* a line ended: the next one starts afresh */
	SCAN_START,		/* before the name: blanks */
	SCAN_NAME,		/* in the name's letters */
	SCAN_EMPTY_CR,		/* blanks, then CR: is a LF next? */
	SCAN_ARGS,		/* the rest of the line, outside strings */
	SCAN_QUOTED,		/* in "..." */
	SCAN_QUOTED_ESC,	/* after a backslash in "..." */
	SCAN_LIT_NUM,		/* after "{", reading digits */
	SCAN_LIT_PLUS,		/* after "{n+", waiting for "}" */
	SCAN_LIT_CLOSE,		/* after "{n}" or "{n+}": CR or LF next */
	SCAN_LIT_CR,		/* after "{n}\r": LF next */
	SCAN_LITERAL,		/* in a literal's octets */
};

static bool
is_letter(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* A shadow line (sieve_filter.h), tracked beside the line it is part of. */
enum shadow_state {
	SHADOW_NONE,		/* none, or its name is reported */
	SHADOW_START,		/* before its name: blanks */
	SHADOW_NAME,		/* in its name's letters */
};

static void
shadow_start(struct sieve_scan *sc)
{
	sc->shadow_state = SHADOW_START;
	sc->shadow[0] = '\0';
	sc->shadowlen = 0;
}

/*
 * One more byte of a shadow line.  True when it ends a name, which is
 * then reported before it.  A name too long to be any command postern
 * looks for ends the shadow line with no event.
 */
static bool
shadow_byte(struct sieve_scan *sc, unsigned char c)
{
	if (sc->shadow_state == SHADOW_START) {
		if (c == ' ' || c == '\t')
			return false;
		sc->shadow_state = SHADOW_NAME;
	}
	if (is_letter(c)) {
		if (sc->shadowlen == SIEVE_SCAN_NAME_MAX) {
			sc->shadow_state = SHADOW_NONE;
			return false;
		}
		sc->shadow[sc->shadowlen++] = (char)c;
		sc->shadow[sc->shadowlen] = '\0';
		return false;
	}
	sc->shadow_state = SHADOW_NONE;
	return sc->shadowlen > 0;
}

void
sieve_scan_init(struct sieve_scan *sc)
{
	memset(sc, 0, sizeof(*sc));
	sc->state = SCAN_NEXT;
}

/*
 * The next line begins.  Not at the end of the last one, so that the
 * caller can still see its name and whether it was blank.
 */
static void
next_line(struct sieve_scan *sc)
{
	sc->state = SCAN_START;
	sc->name[0] = '\0';
	sc->namelen = 0;
	sc->name_long = false;
	sc->blanks = 0;
	sc->blank = true;
	sc->empty = false;
}

/*
 * A literal's announcement is complete: its octets follow, and a server
 * that skipped the line would see a command begin here, even when the
 * literal is empty.
 */
static void
literal_start(struct sieve_scan *sc)
{
	sc->state = sc->litlen > 0 ? SCAN_LITERAL : SCAN_ARGS;
	shadow_start(sc);
}

int
sieve_scan_feed(struct sieve_scan *sc, const char *p, size_t len,
    size_t *used_r, enum sieve_scan_event *ev_r)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = (unsigned char)p[i];

		/*
		 * A shadow line is on only from a literal's start to the end
		 * of its name, which a LF outside literals ends too: never at
		 * a line's start (the NAME event's byte is read twice) nor in
		 * a literal's announcement (whose "{" ends it).
		 */
		if (sc->shadow_state != SHADOW_NONE && shadow_byte(sc, c)) {
			*used_r = i;
			*ev_r = SIEVE_SCAN_SHADOW;
			return 1;
		}
		if (sc->state == SCAN_LITERAL) {
			size_t n = len - i;
			const char *lf;

			if ((uint64_t)n > sc->litlen)
				n = (size_t)sc->litlen;
			/*
			 * Byte by byte in a shadow line's name; else on to the
			 * next LF, where the next shadow line begins.
			 */
			if (sc->shadow_state != SHADOW_NONE)
				n = 1;
			else if ((lf = memchr(p + i, '\n', n)) != NULL)
				n = (size_t)(lf - (p + i)) + 1;
			if (p[i + n - 1] == '\n')
				shadow_start(sc);
			sc->litlen -= n;
			i += n;
			if (sc->litlen == 0)
				sc->state = SCAN_ARGS;
			continue;
		}
		if (sc->state == SCAN_NEXT)
			next_line(sc);
		if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
			sc->blank = false;
		switch (sc->state) {
		case SCAN_NEXT:	/* gone above */
		case SCAN_START:
			if (c == ' ' || c == '\t') {
				if (++sc->blanks > SIEVE_SCAN_NAME_MAX) {
					sc->error = "too many blanks before a command";
					*used_r = i;
					return -1;
				}
				i++;
				continue;
			}
			sc->state = SCAN_NAME;
			FALLTHROUGH;
		case SCAN_NAME:
			if (is_letter(c) && sc->namelen < SIEVE_SCAN_NAME_MAX) {
				sc->name[sc->namelen++] = (char)c;
				sc->name[sc->namelen] = '\0';
				i++;
				continue;
			}
			/* Whether the line is empty is known after its CR. */
			if (sc->namelen == 0 && c == '\r') {
				sc->state = SCAN_EMPTY_CR;
				i++;
				continue;
			}
			/*
			 * The byte that ends the name is read next time; one
			 * letter too many ends it too, as a long name.
			 */
			sc->name_long = is_letter(c);
			sc->empty = sc->namelen == 0 && c == '\n';
			sc->state = SCAN_ARGS;
			*used_r = i;
			*ev_r = SIEVE_SCAN_NAME;
			return 1;
		case SCAN_EMPTY_CR:
			sc->empty = c == '\n';
			sc->state = SCAN_ARGS;
			*used_r = i;
			*ev_r = SIEVE_SCAN_NAME;
			return 1;
		case SCAN_ARGS:
			if (c == '"')
				sc->state = SCAN_QUOTED;
			else if (c == '{') {
				sc->state = SCAN_LIT_NUM;
				sc->litlen = 0;
				sc->plus = false;
			}
			break;
		case SCAN_QUOTED:
			if (c == '\\')
				sc->state = SCAN_QUOTED_ESC;
			else if (c == '"')
				sc->state = SCAN_ARGS;
			break;
		case SCAN_QUOTED_ESC:
			if (c != '\n')
				sc->state = SCAN_QUOTED;
			break;
		case SCAN_LIT_NUM:
			if (c >= '0' && c <= '9') {
				unsigned d = (unsigned)(c - '0');

				if (sc->litlen > (SIEVE_SCAN_LITERAL_MAX - d) / 10) {
					sc->error = "literal too large";
					*used_r = i;
					return -1;
				}
				sc->litlen = sc->litlen * 10 + d;
				i++;
				continue;
			}
			/*
			 * No digits is a literal of nothing to Pigeonhole:
			 * "{}" and "{+}".
			 */
			if (c == '+') {
				sc->plus = true;
				sc->state = SCAN_LIT_PLUS;
				i++;
				continue;
			}
			if (c == '}') {
				sc->state = SCAN_LIT_CLOSE;
				i++;
				continue;
			}
			/* Not a literal after all: the byte is an argument's. */
			sc->state = SCAN_ARGS;
			continue;
		case SCAN_LIT_PLUS:
			if (c == '}') {
				sc->state = SCAN_LIT_CLOSE;
				i++;
				continue;
			}
			sc->state = SCAN_ARGS;
			continue;
		case SCAN_LIT_CLOSE:
			if (c == '\r') {
				sc->state = SCAN_LIT_CR;
				i++;
				continue;
			}
			if (c == '\n') {
				literal_start(sc);
				i++;
				continue;
			}
			sc->state = SCAN_ARGS;
			continue;
		case SCAN_LIT_CR:
			if (c == '\n') {
				literal_start(sc);
				i++;
				continue;
			}
			sc->state = SCAN_ARGS;
			continue;
		}
		i++;
		if (c == '\n') {
			sc->state = SCAN_NEXT;
			*used_r = i;
			*ev_r = SIEVE_SCAN_END;
			return 1;
		}
	}
	*used_r = i;
	return 0;
}

bool
sieve_scan_between_lines(const struct sieve_scan *sc)
{
	return sc->state == SCAN_NEXT;
}

bool
sieve_scan_name_is(const struct sieve_scan *sc, const char *word)
{
	return !sc->name_long && strcasecmp(sc->name, word) == 0;
}

bool
sieve_scan_shadow_is(const struct sieve_scan *sc, const char *word)
{
	return strcasecmp(sc->shadow, word) == 0;
}
