/*
 * Fuzz ID lists (imap_id.c): the client's "ID (...)" command is tokenized,
 * checked with imap_id_parse() and re-sent with imap_id_format() after
 * postern's own x-originating-* / x-connected-* fields, as imap.c does
 * towards the backend.  Invariants: kept pairs are bounded, unique and
 * never reserved; the formatted command is one well-formed line that the
 * tokenizer reads back as ID with our fields first, then a prefix of the
 * client's kept pairs, unchanged, and fits IMAP_ID_WIRE_MAX.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "fuzz.h"
#include "imap_id.h"
#include "imap_parse.h"

const char *const fuzz_seeds[] = {
	"a ID NIL\r\n",
	"a ID (\"name\" \"Thunderbird\" \"version\" \"115.3\")\r\n",
	"a ID (\"name\" \"x\" \"x-originating-ip\" \"6.6.6.6\" \"NAME\" \"dup\")\r\n",
	"a ID (\"os\" NIL \"vendor\" {5+}\r\nac\"me)\r\n",
	"a ID (\"k\" \"v\\\\\\\"q\" \"\xc3\xa9t\xc3\xa9\" \"\xff\")\r\n",
	"a ID (\"a\" \"1\" \"b\" \"2\" \"c\" \"3\" \"d\" \"4\" \"e\" \"5\" \"f\" \"6\")\r\n",
	"a ID (\"name\")\r\n",
	"a ID (name x)\r\n",
	NULL
};

static const struct imap_id_pair ours[] = {
	{ (char *)"x-originating-ip", (char *)"192.0.2.1" },
	{ (char *)"x-originating-port", (char *)"50123" },
	{ (char *)"x-connected-ip", (char *)"2001:db8::1" },
	{ (char *)"x-connected-port", (char *)"143" },
};
#define NOURS	(sizeof(ours) / sizeof(ours[0]))

static bool
same(const struct imap_arg *a, const char *s)
{
	return a->type == IMAP_ARG_STRING && a->len == strlen(s) &&
	    memcmp(a->str, s, a->len) == 0;
}

/* The formatted ID must read back as what was meant. */
static void
check_wire(const struct buf *b, const struct imap_id *id)
{
	struct imap_parser p;
	size_t used, i, j;
	enum imap_parse_result r;

	if (buf_len(b) > 6 + IMAP_ID_WIRE_MAX + 2)
		abort();
	for (i = 0; i + 2 < buf_len(b); i++)
		if (buf_head(b)[i] == '\r' || buf_head(b)[i] == '\n' ||
		    buf_head(b)[i] == '\0')
			abort();
	imap_parser_init(&p, 2 * IMAP_ID_WIRE_MAX);
	r = imap_parser_feed(&p, buf_head(b), buf_len(b), &used);
	if (r != IMAP_PARSE_DONE || used != buf_len(b) ||
	    strcasecmp(p.cmd, "ID") != 0 || p.nargs < 2 + 2 * NOURS ||
	    p.args[0].type != IMAP_ARG_LIST_START ||
	    p.args[p.nargs - 1].type != IMAP_ARG_LIST_END ||
	    (p.nargs - 2) % 2 != 0 || (p.nargs - 2) / 2 > IMAP_ID_PAIRS_MAX)
		abort();
	for (i = 0; i < NOURS; i++)
		if (!same(&p.args[1 + 2 * i], ours[i].field) ||
		    !same(&p.args[2 + 2 * i], ours[i].value))
			abort();
	/* Then the client's pairs in order (some may have been left out). */
	j = 0;
	for (i = 1 + 2 * NOURS; i + 1 < p.nargs; i += 2) {
		while (j < id->npairs && !same(&p.args[i], id->pairs[j].field))
			j++;
		if (j == id->npairs)
			abort();
		if (id->pairs[j].value != NULL ? !same(&p.args[i + 1],
		    id->pairs[j].value) : (p.args[i + 1].type != IMAP_ARG_ATOM ||
		    strcmp(p.args[i + 1].str, "NIL") != 0))
			abort();
		j++;
	}
	imap_parser_free(&p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imap_parser p;
	struct imap_id id;
	const char *error = NULL;
	size_t used;

	imap_parser_init(&p, 65536);
	if (imap_parser_feed(&p, (const char *)data, size, &used) ==
	    IMAP_PARSE_DONE) {
		memset(&id, 0, sizeof(id));
		if (imap_id_parse(p.args, p.nargs, &id, &error) == 0) {
			struct buf b;

			if (id.npairs > IMAP_ID_PAIRS_MAX)
				abort();
			for (size_t i = 0; i < id.npairs; i++) {
				if (id.pairs[i].field == NULL ||
				    imap_id_reserved(id.pairs[i].field))
					abort();
				for (size_t k = 0; k < i; k++)
					if (strcasecmp(id.pairs[k].field,
					    id.pairs[i].field) == 0)
						abort();
			}
			/* As imap.c's send_id(). */
			buf_init(&b, IMAP_ID_WIRE_MAX + 16);
			(void)buf_append_str(&b, "P0 ID ");
			if (imap_id_format(&b, ours, NOURS, &id) < 0 ||
			    buf_append(&b, "\r\n", 2) < 0)
				abort();	/* sized for the worst case */
			check_wire(&b, &id);
			buf_free(&b);
			/* A tight buffer: refused or still well-formed. */
			buf_init(&b, 160 + size % 256);
			(void)buf_append_str(&b, "P0 ID ");
			if (imap_id_format(&b, ours, NOURS, &id) == 0 &&
			    buf_append(&b, "\r\n", 2) == 0)
				check_wire(&b, &id);
			buf_free(&b);
			imap_id_clear(&id);
		} else if (error == NULL)
			abort();
	}
	imap_parser_free(&p);
	return 0;
}
