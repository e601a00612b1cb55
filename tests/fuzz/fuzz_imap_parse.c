/*
 * Fuzz the IMAP tokenizer: whole, and split at a data-chosen point; and
 * its untagged ManageSieve mode, with argument-only lines on a data bit.
 */
#include "autoconf.h"

#include <string.h>

#include "fuzz.h"
#include "imap_parse.h"

const char *const fuzz_seeds[] = {
	"a LOGIN alice secret\r\n",
	"a LOGIN \"al\\\"ice\" \"p w\"\r\nb NOOP\r\n",
	"a LOGIN {5}\r\nalice {6+}\r\nsecret\r\n",
	"a ID (\"name\" \"x\" \"version\" NIL)\r\n",
	"a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n",
	"a LOGIN x {99999999999999999999}\r\n",
	"a BAD {3+}\r\nabc\r\n",
	NULL
};

static void
feed(const uint8_t *data, size_t size, size_t max, size_t split, int mode)
{
	struct imap_parser p;
	size_t off = 0, guard = 0;

	if (mode == 0)
		imap_parser_init(&p, max);
	else {
		imap_parser_init_untagged(&p, max);
		p.args_only = mode == 2;
		imap_parser_reset(&p);
	}
	while (off < size && guard++ < size + 16) {
		size_t end = off < split && split < size ? split : size, used;
		enum imap_parse_result r = imap_parser_feed(&p,
		    (const char *)data + off, end - off, &used);

		off += used;
		if (r == IMAP_PARSE_ERROR && p.fatal)
			break;
		if (r == IMAP_PARSE_DONE ||
		    (r == IMAP_PARSE_ERROR && !imap_parser_skipping(&p)))
			imap_parser_reset(&p);
	}
	imap_parser_free(&p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t split = size ? data[0] % (size + 1) : 0;

	feed(data, size, 8192, size, 0);
	feed(data, size, 64, split, 0);
	feed(data, size, 8192, split, size > 1 && (data[1] & 1) ? 2 : 1);
	return 0;
}
