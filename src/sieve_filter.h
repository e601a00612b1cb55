/*
 * A streaming scanner for ManageSieve (RFC 5804) commands and responses,
 * used after login, when the session is otherwise a byte relay: it finds
 * where each command (or response) begins and ends, and its name, without
 * keeping the bytes.  A command is a line; its strings may be quoted
 * ("...", with \\ and \" escapes) or literals ({n} or {n+} at the end of a
 * line, then CRLF and n octets; no digits is n = 0, as Pigeonhole has it),
 * after which the line goes on.  The name is the run of ASCII letters that
 * begins the line (after spaces or tabs): "UNAUTHENTICATE" in
 * "Unauthenticate\r\n".  Pure: no I/O, no allocation.
 *
 * A server does not always read the literals a line announces: one that
 * rejects the line first (Cyrus timsieved on a parse error, Pigeonhole on
 * an unknown command or a bad string) skips to the next LF, and takes the
 * literal's octets as commands.  So the scanner also reports the name of
 * each "shadow line": the literal's first octet, and every octet after a
 * LF inside it, are where such a server would see a command begin.  A
 * shadow line's name is found the same way (blanks, then letters; any
 * number of blanks, since nothing is held back for it) and may go on past
 * the literal's end, into the rest of the line.
 */
#ifndef POSTERN_SIEVE_FILTER_H
#define POSTERN_SIEVE_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Letters of a name kept.  A longer name is no command postern looks for;
 * it is reported with name_long set as soon as one letter more is seen.
 * The spaces or tabs before it count too, so that a name is never hidden
 * behind blanks: past this many blanks the stream is refused.  So a
 * line's NAME event comes within its first 2 * SIEVE_SCAN_NAME_MAX + 1
 * bytes (for an empty name ended by a CR, after the CR, before the byte
 * that follows, which tells whether the line is empty).
 */
#define SIEVE_SCAN_NAME_MAX	32
/*
 * The largest literal: literals carry scripts (PUTSCRIPT, CHECKSCRIPT,
 * GETSCRIPT's answer), and Pigeonhole's sieve_max_script_size defaults to
 * 1 MiB.  A larger one is refused.
 */
#define SIEVE_SCAN_LITERAL_MAX	(16 * 1024 * 1024)

enum sieve_scan_event {
	SIEVE_SCAN_NAME,	/* the name is complete (sc->name, maybe empty) */
	SIEVE_SCAN_END,		/* the line ended; its LF was the last byte used.
				   name, blank and empty still describe it */
	SIEVE_SCAN_SHADOW,	/* a shadow line's name is complete (sc->shadow,
				   never empty): comes between NAME and END */
};

struct sieve_scan {
	int		 state;
	char		 name[SIEVE_SCAN_NAME_MAX + 1];	/* NUL-terminated */
	size_t		 namelen;
	bool		 name_long;	/* more letters than SIEVE_SCAN_NAME_MAX */
	size_t		 blanks;	/* spaces or tabs before the name */
	bool		 blank;		/* the line has held only blanks and CR */
	bool		 empty;		/* at NAME: the line is blanks, maybe a
					   CR, and the LF that comes next */
	bool		 plus;		/* the literal being read was {n+} */
	uint64_t	 litlen;	/* a literal's size, then what is left of it */
	int		 shadow_state;
	char		 shadow[SIEVE_SCAN_NAME_MAX + 1];	/* NUL-terminated */
	size_t		 shadowlen;
	const char	*error;		/* set when feed returns -1 */
};

void	sieve_scan_init(struct sieve_scan *sc);
/*
 * Scan len bytes.  Returns 1 when an event happened after *used_r bytes
 * (the NAME event comes before the byte that ended the name, which the
 * next call reads; END comes after the LF), 0 when all len bytes were
 * used with no event, -1 on an error (sc->error): a literal larger than
 * SIEVE_SCAN_LITERAL_MAX or too many blanks.  After -1 the stream cannot
 * be followed any more: close it.  Every line gets one NAME event, then
 * one END event, and between them a SHADOW event for each shadow line
 * with a name (which comes before the byte that ended that name).
 */
int	sieve_scan_feed(struct sieve_scan *sc, const char *p, size_t len,
	    size_t *used_r, enum sieve_scan_event *ev_r);
/* After a NAME event: is the name `word` (ASCII letters), in any case? */
bool	sieve_scan_name_is(const struct sieve_scan *sc, const char *word);
/*
 * After a SHADOW event: is the shadow line's name `word`, in any case?  A
 * name longer than SIEVE_SCAN_NAME_MAX gives no event.
 */
bool	sieve_scan_shadow_is(const struct sieve_scan *sc, const char *word);
/* Is the scanner between lines (nothing of the next one seen yet)? */
bool	sieve_scan_between_lines(const struct sieve_scan *sc);

#endif
