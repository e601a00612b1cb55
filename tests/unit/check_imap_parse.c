/*
 * Unit tests for the incremental IMAP command parser (src/imap_parse.h).
 *
 * Every input is run through the parser several ways -- whole, one byte at
 * a time and in small chunks -- driving it the way imap.c does (reset after
 * DONE, reset after a non-fatal ERROR unless the parser is skipping, stop
 * after a fatal ERROR).  The result sequences must be identical; the tests
 * then look at the whole-buffer run.
 */
#include "autoconf.h"

#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_parse.h"

#define MAX_RESULTS	64
#define POOL_SIZE	(256 * 1024)

/* One result the parser returned, with a copy of what it described. */
struct res {
	enum imap_parse_result	 r;
	size_t			 end;	/* input offset just past this result */
	char			 tag[IMAP_TAG_MAX + 1];
	char			 cmd[IMAP_CMD_MAX + 1];
	size_t			 nargs;
	struct imap_arg		 args[IMAP_ARGS_MAX];	/* str points into pool */
	const char		*error;
	bool			 fatal;
	bool			 skipping;
};

struct run {
	struct res	 res[MAX_RESULTS];
	size_t		 nres;
	size_t		 consumed;	/* total bytes the parser took */
	bool		 stopped;	/* by a fatal error */
	char		 pool[POOL_SIZE];
	size_t		 poolused;
};

/* Chunk sizes; 0 = the whole remaining input in one call. */
static const size_t chunks[] = { 0, 1, 2, 3, 7, 64 };
#define NCHUNKS	(sizeof(chunks) / sizeof(chunks[0]))

static struct run runs[NCHUNKS];

/*
 * For the per-byte paths: a passing ck_assert costs a message to the
 * parent in CK_FORK mode, far too slow for 100 KB fed a byte at a time.
 */
#define REQUIRE(cond, ...) do {						\
	if (!(cond))							\
		ck_abort_msg(__VA_ARGS__);				\
} while (0)

static void
snapshot(struct run *run, const struct imap_parser *p,
    enum imap_parse_result r, size_t end)
{
	struct res *s;

	REQUIRE(run->nres < MAX_RESULTS, "more than %d results", MAX_RESULTS);
	s = &run->res[run->nres++];
	memset(s, 0, sizeof(*s));
	s->r = r;
	s->end = end;
	memcpy(s->tag, p->tag, sizeof(s->tag));
	memcpy(s->cmd, p->cmd, sizeof(s->cmd));
	s->error = p->error;
	s->fatal = p->fatal;
	s->skipping = imap_parser_skipping(p);
	if (r != IMAP_PARSE_DONE)
		return;
	REQUIRE(p->nargs <= IMAP_ARGS_MAX, "nargs %zu", p->nargs);
	s->nargs = p->nargs;
	for (size_t i = 0; i < p->nargs; i++) {
		const struct imap_arg *a = &p->args[i];
		char *copy;

		REQUIRE(a->str != NULL, "arg %zu has no string", i);
		/* The parser promises NUL termination. */
		REQUIRE(a->str[a->len] == '\0', "arg %zu not NUL-terminated", i);
		REQUIRE(run->poolused + a->len + 1 <= POOL_SIZE, "pool full");
		copy = run->pool + run->poolused;
		memcpy(copy, a->str, a->len + 1);
		run->poolused += a->len + 1;
		s->args[i] = *a;
		s->args[i].str = copy;
	}
}

/* Drive a fresh parser over data[0..len) in pieces of `chunk` bytes. */
static void
run_parser(struct run *run, size_t max, const char *data, size_t len,
    size_t chunk)
{
	struct imap_parser p;
	size_t pos = 0, calls = 0;

	run->nres = 0;
	run->poolused = 0;
	run->stopped = false;
	imap_parser_init(&p, max);
	imap_parser_reset(&p);
	while (pos < len) {
		size_t n = chunk == 0 || chunk > len - pos ? len - pos : chunk;
		size_t used = (size_t)-1;
		enum imap_parse_result r;

		REQUIRE(++calls < 4 * len + 16, "parser makes no progress");
		r = imap_parser_feed(&p, data + pos, n, &used);
		REQUIRE(used <= n, "consumed %zu of %zu", used, n);
		pos += used;
		switch (r) {
		case IMAP_PARSE_MORE:
			REQUIRE(used == n, "MORE after consuming %zu of %zu", used, n);
			break;
		case IMAP_PARSE_LITERAL:
			snapshot(run, &p, r, pos);
			break;
		case IMAP_PARSE_DONE:
			snapshot(run, &p, r, pos);
			imap_parser_reset(&p);
			break;
		case IMAP_PARSE_ERROR:
			REQUIRE(p.error != NULL, "ERROR without a reason");
			snapshot(run, &p, r, pos);
			if (p.fatal) {
				run->stopped = true;
				goto out;
			}
			if (!imap_parser_skipping(&p))
				imap_parser_reset(&p);
			break;
		default:
			ck_abort_msg("unexpected result %d", (int)r);
		}
	}
out:
	run->consumed = pos;
	imap_parser_free(&p);
}

static void
assert_same(const struct run *a, const struct run *b, size_t chunk)
{
	ck_assert_msg(a->nres == b->nres, "chunk %zu: %zu results, whole: %zu",
	    chunk, b->nres, a->nres);
	ck_assert_uint_eq(a->consumed, b->consumed);
	ck_assert_int_eq(a->stopped, b->stopped);
	for (size_t i = 0; i < a->nres; i++) {
		const struct res *x = &a->res[i], *y = &b->res[i];

		ck_assert_msg(x->r == y->r, "chunk %zu, result %zu: %d vs %d",
		    chunk, i, (int)y->r, (int)x->r);
		ck_assert_msg(x->end == y->end, "chunk %zu, result %zu: end %zu vs %zu",
		    chunk, i, y->end, x->end);
		ck_assert_str_eq(x->tag, y->tag);
		ck_assert_str_eq(x->cmd, y->cmd);
		ck_assert_int_eq(x->fatal, y->fatal);
		ck_assert_int_eq(x->skipping, y->skipping);
		ck_assert_int_eq(x->error == NULL, y->error == NULL);
		if (x->error != NULL)
			ck_assert_str_eq(x->error, y->error);
		ck_assert_uint_eq(x->nargs, y->nargs);
		for (size_t k = 0; k < x->nargs; k++) {
			ck_assert_int_eq(x->args[k].type, y->args[k].type);
			ck_assert_uint_eq(x->args[k].len, y->args[k].len);
			ck_assert_int_eq(x->args[k].literal, y->args[k].literal);
			ck_assert_mem_eq(x->args[k].str, y->args[k].str, x->args[k].len);
		}
	}
}

/* Parse whole, byte by byte and in chunks; all must agree. */
static const struct run *
parse_n(size_t max, const char *data, size_t len)
{
	for (size_t c = 0; c < NCHUNKS; c++) {
		run_parser(&runs[c], max, data, len, chunks[c]);
		if (c > 0)
			assert_same(&runs[0], &runs[c], chunks[c]);
	}
	return &runs[0];
}

static const struct run *
parse(size_t max, const char *text)
{
	return parse_n(max, text, strlen(text));
}

#define DEFAULT_MAX	8192

#define ASSERT_NRES(run, n) do {					\
	ck_assert_msg((run)->nres == (n), "expected %d results, got %zu",	\
	    (int)(n), (run)->nres);					\
} while (0)

#define ASSERT_DONE(res, tag_, cmd_, nargs_) do {			\
	ck_assert_int_eq((res)->r, IMAP_PARSE_DONE);			\
	ck_assert_str_eq((res)->tag, (tag_));				\
	ck_assert_str_eq((res)->cmd, (cmd_));				\
	ck_assert_uint_eq((res)->nargs, (nargs_));			\
} while (0)

#define ASSERT_ARG(res, i, type_, s_, len_, literal_) do {		\
	ck_assert_int_eq((res)->args[i].type, (type_));			\
	ck_assert_uint_eq((res)->args[i].len, (size_t)(len_));		\
	ck_assert_mem_eq((res)->args[i].str, (s_), (size_t)(len_));	\
	ck_assert_int_eq((res)->args[i].literal, (literal_));		\
} while (0)

#define ASSERT_ATOM(res, i, s_)						\
	ASSERT_ARG(res, i, IMAP_ARG_ATOM, s_, strlen(s_), false)
#define ASSERT_QUOTED(res, i, s_)					\
	ASSERT_ARG(res, i, IMAP_ARG_STRING, s_, strlen(s_), false)
#define ASSERT_LITERAL(res, i, s_, len_)				\
	ASSERT_ARG(res, i, IMAP_ARG_STRING, s_, len_, true)

#define ASSERT_ERROR(res, msg, fatal_) do {				\
	ck_assert_int_eq((res)->r, IMAP_PARSE_ERROR);			\
	ck_assert_ptr_nonnull((res)->error);				\
	ck_assert_str_eq((res)->error, (msg));				\
	ck_assert_int_eq((res)->fatal, (fatal_));			\
} while (0)

/* Basics. */

START_TEST(test_simple_command)
{
	const struct run *run = parse(DEFAULT_MAX, "a1 NOOP\r\n");

	ASSERT_NRES(run, 1);
	ASSERT_DONE(&run->res[0], "a1", "NOOP", 0);
	ck_assert_uint_eq(run->res[0].end, 9);
	ck_assert_uint_eq(run->consumed, 9);
}
END_TEST

START_TEST(test_tag_and_command_chars)
{
	const struct run *run = parse(DEFAULT_MAX,
	    "A.b-c_1:2 capability\r\n"
	    "x authenticate PLAIN\r\n");

	ASSERT_NRES(run, 2);
	ASSERT_DONE(&run->res[0], "A.b-c_1:2", "capability", 0);
	ASSERT_DONE(&run->res[1], "x", "authenticate", 1);
	ASSERT_ATOM(&run->res[1], 0, "PLAIN");
}
END_TEST

START_TEST(test_atoms)
{
	const struct run *run = parse(DEFAULT_MAX,
	    "a LOGIN alice s3cr3t!#$&'*+,-./:;<=>?@[]^_`|~\r\n");

	ASSERT_NRES(run, 1);
	ASSERT_DONE(&run->res[0], "a", "LOGIN", 2);
	ASSERT_ATOM(&run->res[0], 0, "alice");
	ASSERT_ATOM(&run->res[0], 1, "s3cr3t!#$&'*+,-./:;<=>?@[]^_`|~");
}
END_TEST

START_TEST(test_quoted_strings)
{
	const struct run *run = parse(DEFAULT_MAX,
	    "a LOGIN \"al ice\" \"p\\\"a\\\\ss\" \"\"\r\n");

	ASSERT_NRES(run, 1);
	ASSERT_DONE(&run->res[0], "a", "LOGIN", 3);
	ASSERT_QUOTED(&run->res[0], 0, "al ice");
	ASSERT_QUOTED(&run->res[0], 1, "p\"a\\ss");
	ASSERT_QUOTED(&run->res[0], 2, "");
}
END_TEST

START_TEST(test_quoted_special_chars)
{
	/* Parentheses, braces and '%' mean nothing inside quotes. */
	const struct run *run = parse(DEFAULT_MAX,
	    "a LOGIN \"(x) {5} %*\" \"\\\\\"\r\n");

	ASSERT_NRES(run, 1);
	ASSERT_DONE(&run->res[0], "a", "LOGIN", 2);
	ASSERT_QUOTED(&run->res[0], 0, "(x) {5} %*");
	ASSERT_QUOTED(&run->res[0], 1, "\\");
}
END_TEST

START_TEST(test_utf8_quoted)
{
	const struct run *run = parse(DEFAULT_MAX,
	    "a LOGIN \"j\xc3\xbcrgen@example.org\" \"p\xc3\xa4ss \xe2\x82\xac \xf0\x9f\x94\x91\"\r\n");

	ASSERT_NRES(run, 1);
	ASSERT_DONE(&run->res[0], "a", "LOGIN", 2);
	ASSERT_QUOTED(&run->res[0], 0, "j\xc3\xbcrgen@example.org");
	ASSERT_QUOTED(&run->res[0], 1, "p\xc3\xa4ss \xe2\x82\xac \xf0\x9f\x94\x91");
}
END_TEST

START_TEST(test_utf8_atom)
{
	const struct run *run = parse(DEFAULT_MAX,
	    "a LOGIN J\xc3\x9cRGEN \xe2\x82\xac\xe2\x82\xac\r\n");

	ASSERT_NRES(run, 1);
	ASSERT_DONE(&run->res[0], "a", "LOGIN", 2);
	ASSERT_ATOM(&run->res[0], 0, "J\xc3\x9cRGEN");
	ASSERT_ATOM(&run->res[0], 1, "\xe2\x82\xac\xe2\x82\xac");
}
END_TEST

START_TEST(test_lf_only)
{
	const struct run *run = parse(DEFAULT_MAX,
	    "a LOGIN x y\nb NOOP\nc LOGIN {1}\nz \"w\"\n");

	ASSERT_NRES(run, 4);
	ASSERT_DONE(&run->res[0], "a", "LOGIN", 2);
	ASSERT_ATOM(&run->res[0], 1, "y");
	ASSERT_DONE(&run->res[1], "b", "NOOP", 0);
	ck_assert_int_eq(run->res[2].r, IMAP_PARSE_LITERAL);
	ASSERT_DONE(&run->res[3], "c", "LOGIN", 2);
	ASSERT_LITERAL(&run->res[3], 0, "z", 1);
	ASSERT_QUOTED(&run->res[3], 1, "w");
}
END_TEST

/* Literals. */

START_TEST(test_sync_literal)
{
	static const char in[] = "a LOGIN {5}\r\nalice {6}\r\nsecret\r\n";
	const struct run *run = parse(DEFAULT_MAX, in);

	ASSERT_NRES(run, 3);
	/* "+" goes out after each header's CRLF, before the data. */
	ck_assert_int_eq(run->res[0].r, IMAP_PARSE_LITERAL);
	ck_assert_uint_eq(run->res[0].end, strlen("a LOGIN {5}\r\n"));
	ck_assert_str_eq(run->res[0].tag, "a");
	ck_assert_int_eq(run->res[1].r, IMAP_PARSE_LITERAL);
	ck_assert_uint_eq(run->res[1].end, strlen("a LOGIN {5}\r\nalice {6}\r\n"));
	ASSERT_DONE(&run->res[2], "a", "LOGIN", 2);
	ck_assert_uint_eq(run->res[2].end, strlen(in));
	ASSERT_LITERAL(&run->res[2], 0, "alice", 5);
	ASSERT_LITERAL(&run->res[2], 1, "secret", 6);
}
END_TEST

START_TEST(test_nonsync_literal)
{
	static const char in[] = "a LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n";
	const struct run *run = parse(DEFAULT_MAX, in);

	ASSERT_NRES(run, 1);	/* no LITERAL result */
	ASSERT_DONE(&run->res[0], "a", "LOGIN", 2);
	ck_assert_uint_eq(run->res[0].end, strlen(in));
	ASSERT_LITERAL(&run->res[0], 0, "alice", 5);
	ASSERT_LITERAL(&run->res[0], 1, "secret", 6);
}
END_TEST

START_TEST(test_literal_mixed_with_quoted)
{
	const struct run *run = parse(DEFAULT_MAX,
	    "a LOGIN \"alice\" {3+}\r\nx\"y\r\n");

	ASSERT_NRES(run, 1);
	ASSERT_DONE(&run->res[0], "a", "LOGIN", 2);
	ASSERT_QUOTED(&run->res[0], 0, "alice");
	ASSERT_LITERAL(&run->res[0], 1, "x\"y", 3);
}
END_TEST

START_TEST(test_literal_split_everywhere)
{
	/* Split the command into two feeds at every possible point. */
	static const char in[] = "t7 LOGIN {5}\r\nal\r\ne {4+}\r\n\"()\\\r\n";
	size_t len = sizeof(in) - 1;

	for (size_t split = 0; split <= len; split++) {
		struct imap_parser p;
		size_t pos = 0, used, nlit = 0, ndone = 0;

		imap_parser_init(&p, DEFAULT_MAX);
		imap_parser_reset(&p);
		while (pos < len) {
			size_t stop = pos < split ? split : len;
			enum imap_parse_result r;

			r = imap_parser_feed(&p, in + pos, stop - pos, &used);
			pos += used;
			if (r == IMAP_PARSE_LITERAL) {
				ck_assert_uint_eq(pos, strlen("t7 LOGIN {5}\r\n"));
				nlit++;
			} else if (r == IMAP_PARSE_DONE) {
				ck_assert_uint_eq(pos, len);
				ck_assert_str_eq(p.tag, "t7");
				ck_assert_uint_eq(p.nargs, 2);
				ck_assert(p.args[0].literal && p.args[1].literal);
				ck_assert_uint_eq(p.args[0].len, 5);
				ck_assert_mem_eq(p.args[0].str, "al\r\ne", 5);
				ck_assert_uint_eq(p.args[1].len, 4);
				ck_assert_mem_eq(p.args[1].str, "\"()\\", 4);
				ndone++;
			} else
				ck_assert_msg(r == IMAP_PARSE_MORE,
				    "split %zu: result %d (%s)", split, (int)r,
				    p.error ? p.error : "");
		}
		ck_assert_uint_eq(nlit, 1);
		ck_assert_uint_eq(ndone, 1);
		imap_parser_free(&p);
	}
}
END_TEST

START_TEST(test_zero_length_literals)
{
	static const char in[] = "a LOGIN {0}\r\n {0+}\r\n\r\n";
	const struct run *run = parse(DEFAULT_MAX, in);

	ASSERT_NRES(run, 2);
	ck_assert_int_eq(run->res[0].r, IMAP_PARSE_LITERAL);
	ck_assert_uint_eq(run->res[0].end, strlen("a LOGIN {0}\r\n"));
	ASSERT_DONE(&run->res[1], "a", "LOGIN", 2);
	ASSERT_LITERAL(&run->res[1], 0, "", 0);
	ASSERT_LITERAL(&run->res[1], 1, "", 0);
}
END_TEST

START_TEST(test_literal_with_crlf_and_nul)
{
	static const char in[] = "a LOGIN bob {7}\r\na\r\nb\0c\n\r\nb NOOP\r\n";
	const struct run *run = parse_n(DEFAULT_MAX, in, sizeof(in) - 1);

	ASSERT_NRES(run, 3);
	ck_assert_int_eq(run->res[0].r, IMAP_PARSE_LITERAL);
	ASSERT_DONE(&run->res[1], "a", "LOGIN", 2);
	ASSERT_ATOM(&run->res[1], 0, "bob");
	ASSERT_LITERAL(&run->res[1], 1, "a\r\nb\0c\n", 7);
	ASSERT_DONE(&run->res[2], "b", "NOOP", 0);
}
END_TEST

START_TEST(test_literal_lf_only_header)
{
	const struct run *run = parse(DEFAULT_MAX, "a LOGIN {2+}\nab {1}\nc\n");

	ASSERT_NRES(run, 2);
	ck_assert_int_eq(run->res[0].r, IMAP_PARSE_LITERAL);
	ASSERT_DONE(&run->res[1], "a", "LOGIN", 2);
	ASSERT_LITERAL(&run->res[1], 0, "ab", 2);
	ASSERT_LITERAL(&run->res[1], 1, "c", 1);
}
END_TEST

START_TEST(test_literal_bad_length)
{
	const char *bad[] = {
		"a LOGIN {}\r\nb NOOP\r\n",
		"a LOGIN {x}\r\nb NOOP\r\n",
		"a LOGIN {+}\r\nb NOOP\r\n",
		"a LOGIN {5+5}\r\nb NOOP\r\n",
		"a LOGIN {5++}\r\nb NOOP\r\n",
		"a LOGIN {-1}\r\nb NOOP\r\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const struct run *run = parse(DEFAULT_MAX, bad[i]);

		ck_assert_msg(run->nres == 2, "%s: %zu results", bad[i], run->nres);
		ASSERT_ERROR(&run->res[0], "invalid literal length", false);
		ASSERT_DONE(&run->res[1], "b", "NOOP", 0);
	}
}
END_TEST

START_TEST(test_literal_header_not_at_end)
{
	const struct run *run = parse(DEFAULT_MAX,
	    "a LOGIN {5} x\r\nb NOOP\r\n");

	ASSERT_NRES(run, 2);
	ASSERT_ERROR(&run->res[0], "literal header must end the line", false);
	ASSERT_DONE(&run->res[1], "b", "NOOP", 0);
}
END_TEST

/* Lists. */

START_TEST(test_id_list)
{
	const struct run *run = parse(DEFAULT_MAX,
	    "a ID (\"name\" \"x\" \"version\" NIL)\r\n");
	const struct res *r = &run->res[0];

	ASSERT_NRES(run, 1);
	ASSERT_DONE(r, "a", "ID", 6);
	ck_assert_int_eq(r->args[0].type, IMAP_ARG_LIST_START);
	ASSERT_QUOTED(r, 1, "name");
	ASSERT_QUOTED(r, 2, "x");
	ASSERT_QUOTED(r, 3, "version");
	ASSERT_ATOM(r, 4, "NIL");
	ck_assert_int_eq(r->args[5].type, IMAP_ARG_LIST_END);
}
END_TEST

START_TEST(test_id_nil)
{
	const struct run *run = parse(DEFAULT_MAX, "a ID NIL\r\nb ID ()\r\n");

	ASSERT_NRES(run, 2);
	ASSERT_DONE(&run->res[0], "a", "ID", 1);
	ASSERT_ATOM(&run->res[0], 0, "NIL");
	ASSERT_DONE(&run->res[1], "b", "ID", 2);
	ck_assert_int_eq(run->res[1].args[0].type, IMAP_ARG_LIST_START);
	ck_assert_int_eq(run->res[1].args[1].type, IMAP_ARG_LIST_END);
}
END_TEST

START_TEST(test_nested_lists)
{
	const struct run *run = parse(DEFAULT_MAX,
	    "a X (a (b {1+}\r\nc) \"d\") e\r\n");
	const struct res *r = &run->res[0];

	ASSERT_NRES(run, 1);
	ASSERT_DONE(r, "a", "X", 9);
	ck_assert_int_eq(r->args[0].type, IMAP_ARG_LIST_START);
	ASSERT_ATOM(r, 1, "a");
	ck_assert_int_eq(r->args[2].type, IMAP_ARG_LIST_START);
	ASSERT_ATOM(r, 3, "b");
	ASSERT_LITERAL(r, 4, "c", 1);
	ck_assert_int_eq(r->args[5].type, IMAP_ARG_LIST_END);
	ASSERT_QUOTED(r, 6, "d");
	ck_assert_int_eq(r->args[7].type, IMAP_ARG_LIST_END);
	ASSERT_ATOM(r, 8, "e");
}
END_TEST

START_TEST(test_lists_nested_too_deeply)
{
	char in[64];
	const struct run *run;

	/* IMAP_DEPTH_MAX levels are fine ... */
	snprintf(in, sizeof(in), "a X %.*s%.*s\r\n", IMAP_DEPTH_MAX, "((((((((",
	    IMAP_DEPTH_MAX, "))))))))");
	run = parse(DEFAULT_MAX, in);
	ASSERT_NRES(run, 1);
	ASSERT_DONE(&run->res[0], "a", "X", 2 * IMAP_DEPTH_MAX);

	/* ... one more is not. */
	snprintf(in, sizeof(in), "a X %.*s%.*s\r\nb NOOP\r\n", IMAP_DEPTH_MAX + 1,
	    "((((((((", IMAP_DEPTH_MAX + 1, "))))))))");
	run = parse(DEFAULT_MAX, in);
	ASSERT_NRES(run, 2);
	ASSERT_ERROR(&run->res[0], "lists nested too deeply", false);
	ASSERT_DONE(&run->res[1], "b", "NOOP", 0);
}
END_TEST

START_TEST(test_unbalanced_parens)
{
	const char *bad[] = {
		"a ID (\"x\"\r\nb NOOP\r\n",
		"a ID ((\"x\")\r\nb NOOP\r\n",
		"a ID (\r\nb NOOP\r\n",
		"a ID (\"x\"\nb NOOP\r\n",
	};
	const struct run *run;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		run = parse(DEFAULT_MAX, bad[i]);
		ck_assert_msg(run->nres == 2, "%s: %zu results", bad[i], run->nres);
		ASSERT_ERROR(&run->res[0], "unbalanced parentheses", false);
		ASSERT_DONE(&run->res[1], "b", "NOOP", 0);
	}

	/* A stray ')' is an error too (whatever the wording). */
	run = parse(DEFAULT_MAX, "a ID )\r\nb ID (x))\r\nc NOOP\r\n");
	ASSERT_NRES(run, 3);
	ck_assert_int_eq(run->res[0].r, IMAP_PARSE_ERROR);
	ck_assert(!run->res[0].fatal);
	ck_assert_int_eq(run->res[1].r, IMAP_PARSE_ERROR);
	ck_assert(!run->res[1].fatal);
	ASSERT_DONE(&run->res[2], "c", "NOOP", 0);
}
END_TEST

/* Pipelining and *consumed_r. */

START_TEST(test_pipelining_consumed)
{
	static const char in[] = "a NOOP\r\nb LOGIN x y\r\nc LOG";
	struct imap_parser p;
	size_t used, len = sizeof(in) - 1;

	imap_parser_init(&p, DEFAULT_MAX);
	imap_parser_reset(&p);

	ck_assert_int_eq(imap_parser_feed(&p, in, len, &used), IMAP_PARSE_DONE);
	ck_assert_uint_eq(used, 8);	/* stops right after the first LF */
	ck_assert_str_eq(p.tag, "a");
	ck_assert_str_eq(p.cmd, "NOOP");
	imap_parser_reset(&p);

	ck_assert_int_eq(imap_parser_feed(&p, in + 8, len - 8, &used),
	    IMAP_PARSE_DONE);
	ck_assert_uint_eq(used, 13);
	ck_assert_str_eq(p.tag, "b");
	ck_assert_uint_eq(p.nargs, 2);
	ck_assert_str_eq(p.args[1].str, "y");
	imap_parser_reset(&p);

	ck_assert_int_eq(imap_parser_feed(&p, in + 21, len - 21, &used),
	    IMAP_PARSE_MORE);
	ck_assert_uint_eq(used, len - 21);
	ck_assert_int_eq(imap_parser_feed(&p, "IN u p\r\n", 8, &used),
	    IMAP_PARSE_DONE);
	ck_assert_uint_eq(used, 8);
	ck_assert_str_eq(p.cmd, "LOGIN");
	imap_parser_free(&p);
}
END_TEST

START_TEST(test_pipelining_after_literal)
{
	/* LITERAL stops right after the header; DONE right after the LF. */
	static const char in[] = "a LOGIN {1}\r\nx y\r\nb NOOP\r\n";
	struct imap_parser p;
	size_t used, pos = 0, len = sizeof(in) - 1;

	imap_parser_init(&p, DEFAULT_MAX);
	imap_parser_reset(&p);
	ck_assert_int_eq(imap_parser_feed(&p, in, len, &used), IMAP_PARSE_LITERAL);
	ck_assert_uint_eq(used, 13);
	pos += used;
	ck_assert_int_eq(imap_parser_feed(&p, in + pos, len - pos, &used),
	    IMAP_PARSE_DONE);
	ck_assert_uint_eq(used, 5);
	pos += used;
	imap_parser_reset(&p);
	ck_assert_int_eq(imap_parser_feed(&p, in + pos, len - pos, &used),
	    IMAP_PARSE_DONE);
	ck_assert_uint_eq(pos + used, len);
	ck_assert_str_eq(p.tag, "b");
	imap_parser_free(&p);
}
END_TEST

START_TEST(test_many_pipelined)
{
	char in[4096];
	size_t n = 0;
	const struct run *run;

	for (int i = 0; i < 40; i++)
		n += (size_t)snprintf(in + n, sizeof(in) - n,
		    "t%d LOGIN \"u%d\" {2+}\r\np%d\r\n", i, i, i % 10);
	run = parse_n(DEFAULT_MAX, in, n);
	ASSERT_NRES(run, 40);
	for (int i = 0; i < 40; i++) {
		char tag[16], user[16], pass[16];

		snprintf(tag, sizeof(tag), "t%d", i);
		snprintf(user, sizeof(user), "u%d", i);
		snprintf(pass, sizeof(pass), "p%d", i % 10);
		ASSERT_DONE(&run->res[i], tag, "LOGIN", 2);
		ASSERT_QUOTED(&run->res[i], 0, user);
		ASSERT_LITERAL(&run->res[i], 1, pass, 2);
	}
}
END_TEST

/* Size limit. */

START_TEST(test_oversize_sync_literal)
{
	static const char in[] = "a LOGIN {100}\r\nb NOOP\r\n";
	const struct run *run = parse(64, in);

	ASSERT_NRES(run, 2);
	ASSERT_ERROR(&run->res[0], "literal too large", false);
	ck_assert_str_eq(run->res[0].tag, "a");
	/* Refused at the header: nothing left to skip, no "+" was sent. */
	ck_assert_uint_eq(run->res[0].end, strlen("a LOGIN {100}\r\n"));
	ck_assert(!run->res[0].skipping);
	ASSERT_DONE(&run->res[1], "b", "NOOP", 0);
}
END_TEST

START_TEST(test_oversize_literal_huge_length)
{
	/* Digits beyond any integer type must not wrap around. */
	const struct run *run = parse(DEFAULT_MAX,
	    "a LOGIN {18446744073709551617}\r\nb LOGIN {99999999999999999999999999}\r\nc NOOP\r\n");

	ASSERT_NRES(run, 3);
	ASSERT_ERROR(&run->res[0], "literal too large", false);
	ASSERT_ERROR(&run->res[1], "literal too large", false);
	ASSERT_DONE(&run->res[2], "c", "NOOP", 0);

	run = parse(DEFAULT_MAX, "a LOGIN {18446744073709551617+}\r\nxx\r\n");
	ASSERT_NRES(run, 1);
	ASSERT_ERROR(&run->res[0], "literal too large", true);
}
END_TEST

START_TEST(test_oversize_nonsync_literal_fatal)
{
	char in[256];
	const struct run *run;

	snprintf(in, sizeof(in), "a LOGIN {100+}\r\n%0100d\r\nb NOOP\r\n", 0);
	run = parse(64, in);
	ASSERT_NRES(run, 1);
	ASSERT_ERROR(&run->res[0], "literal too large", true);
	ck_assert(run->stopped);
	ck_assert_uint_eq(run->res[0].end, strlen("a LOGIN {100+}\r\n"));
}
END_TEST

START_TEST(test_literal_limit_boundary)
{
	/* The whole command, literal and final CRLF included, may be max. */
	char in[256];
	const struct run *run;
	int n;

	n = snprintf(in, sizeof(in), "a LOGIN {48}\r\n%048d\r\n", 0);
	ck_assert_int_eq(n, 64);
	run = parse(64, in);
	ASSERT_NRES(run, 2);
	ck_assert_int_eq(run->res[0].r, IMAP_PARSE_LITERAL);
	ASSERT_DONE(&run->res[1], "a", "LOGIN", 1);
	ck_assert_uint_eq(run->res[1].args[0].len, 48);

	/* A longer literal must not make it through. */
	snprintf(in, sizeof(in), "a LOGIN {60}\r\n%060d\r\n", 0);
	run = parse(64, in);
	ck_assert_uint_ge(run->nres, 1);
	ASSERT_ERROR(&run->res[0], "literal too large", false);
}
END_TEST

START_TEST(test_line_length_boundary)
{
	/* Exactly max bytes including CRLF: accepted; one more: refused. */
	char in[128];
	const struct run *run;

	snprintf(in, sizeof(in), "a LOGIN %0*d\r\n", 64 - 10, 0);
	ck_assert_uint_eq(strlen(in), 64);
	run = parse(64, in);
	ASSERT_NRES(run, 1);
	ASSERT_DONE(&run->res[0], "a", "LOGIN", 1);

	snprintf(in, sizeof(in), "a LOGIN %0*d\r\nb NOOP\r\n", 64 - 9, 0);
	run = parse(64, in);
	ASSERT_NRES(run, 2);
	ASSERT_ERROR(&run->res[0], "command line too long", false);
	ASSERT_DONE(&run->res[1], "b", "NOOP", 0);
}
END_TEST

START_TEST(test_100k_line)
{
	size_t n = 100 * 1024, len = 0;
	char *in = malloc(n + 64);
	const struct run *run;

	ck_assert_ptr_nonnull(in);
	len += (size_t)sprintf(in, "a LOGIN ");
	memset(in + len, 'x', n);
	len += n;
	len += (size_t)sprintf(in + len, "\r\nb NOOP\r\n");

	run = parse_n(8192, in, len);
	ASSERT_NRES(run, 2);
	ASSERT_ERROR(&run->res[0], "command line too long", false);
	ck_assert_str_eq(run->res[0].tag, "a");
	ck_assert(run->res[0].skipping);
	/* Detected once the limit is passed, not at the end of the line. */
	ck_assert_uint_le(run->res[0].end, 8192 + 1);
	ASSERT_DONE(&run->res[1], "b", "NOOP", 0);
	ck_assert_uint_eq(run->consumed, len);
	free(in);
}
END_TEST

START_TEST(test_long_quoted_and_literal_data)
{
	/* A quoted string that runs past the limit; then a good command. */
	size_t n = 20000, len = 0;
	char *in = malloc(n + 64);
	const struct run *run;

	ck_assert_ptr_nonnull(in);
	len += (size_t)sprintf(in, "a LOGIN \"");
	memset(in + len, 'q', n);
	len += n;
	len += (size_t)sprintf(in + len, "\" x\r\nb NOOP\r\n");
	run = parse_n(8192, in, len);
	ASSERT_NRES(run, 2);
	ASSERT_ERROR(&run->res[0], "command line too long", false);
	ASSERT_DONE(&run->res[1], "b", "NOOP", 0);
	free(in);
}
END_TEST

/* Errors and recovery. */

START_TEST(test_bad_escape)
{
	const struct run *run = parse(DEFAULT_MAX,
	    "a LOGIN \"a\\qb\" x\r\nb NOOP\r\n");

	ASSERT_NRES(run, 2);
	ASSERT_ERROR(&run->res[0], "invalid escape in quoted string", false);
	ck_assert_str_eq(run->res[0].tag, "a");
	ck_assert(run->res[0].skipping);
	ASSERT_DONE(&run->res[1], "b", "NOOP", 0);
}
END_TEST

START_TEST(test_line_break_in_quoted)
{
	const struct run *run = parse(DEFAULT_MAX,
	    "a LOGIN \"ab\r\nb LOGIN \"ab\ncd\" x\r\nc NOOP\r\n");

	/* First line: CR inside quotes; then LF inside quotes. */
	ck_assert_uint_ge(run->nres, 2);
	ASSERT_ERROR(&run->res[0], "line break or NUL in quoted string", false);
	ASSERT_ERROR(&run->res[1], "line break or NUL in quoted string", false);
	ck_assert_str_eq(run->res[1].tag, "b");
	/* The LF ended b's line; "cd\" x" is a new (bad) line, then c parses. */
	ck_assert_int_eq(run->res[run->nres - 1].r, IMAP_PARSE_DONE);
	ck_assert_str_eq(run->res[run->nres - 1].tag, "c");
}
END_TEST

START_TEST(test_nul_in_quoted)
{
	static const char in[] = "a LOGIN \"a\0b\" x\r\nb NOOP\r\n";
	const struct run *run = parse_n(DEFAULT_MAX, in, sizeof(in) - 1);

	ASSERT_NRES(run, 2);
	ASSERT_ERROR(&run->res[0], "line break or NUL in quoted string", false);
	ASSERT_DONE(&run->res[1], "b", "NOOP", 0);
}
END_TEST

START_TEST(test_missing_command)
{
	const struct run *run = parse(DEFAULT_MAX,
	    "a\r\n\r\nb\nc NOOP\r\n");

	ASSERT_NRES(run, 4);
	ASSERT_ERROR(&run->res[0], "missing command", false);
	ck_assert_str_eq(run->res[0].tag, "a");
	ASSERT_ERROR(&run->res[1], "missing command", false);
	ck_assert_str_eq(run->res[1].tag, "");
	ASSERT_ERROR(&run->res[2], "missing command", false);
	ASSERT_DONE(&run->res[3], "c", "NOOP", 0);
}
END_TEST

START_TEST(test_empty_command_name)
{
	const struct run *run = parse(DEFAULT_MAX, "a \r\nb  NOOP\r\nc NOOP\r\n");

	ASSERT_NRES(run, 3);
	ASSERT_ERROR(&run->res[0], "invalid command name", false);
	ASSERT_ERROR(&run->res[1], "invalid command name", false);
	ASSERT_DONE(&run->res[2], "c", "NOOP", 0);
}
END_TEST

START_TEST(test_cr_without_lf)
{
	const struct run *run = parse(DEFAULT_MAX,
	    "a NOOP\rb NOOP\r\nc LOGIN x y\rz\r\nd NOOP\r\n");

	ASSERT_NRES(run, 3);
	ASSERT_ERROR(&run->res[0], "CR without LF", false);
	ck_assert_str_eq(run->res[0].tag, "a");
	ASSERT_ERROR(&run->res[1], "CR without LF", false);
	ck_assert_str_eq(run->res[1].tag, "c");
	ASSERT_DONE(&run->res[2], "d", "NOOP", 0);
}
END_TEST

START_TEST(test_missing_space_between_args)
{
	const struct run *run = parse(DEFAULT_MAX,
	    "a LOGIN \"x\"\"y\"\r\nb NOOP\r\n");

	ASSERT_NRES(run, 2);
	ASSERT_ERROR(&run->res[0], "missing space between arguments", false);
	ASSERT_DONE(&run->res[1], "b", "NOOP", 0);
}
END_TEST

START_TEST(test_too_many_args)
{
	char in[1024];
	size_t n;
	const struct run *run;

	/* IMAP_ARGS_MAX arguments are fine ... */
	n = (size_t)snprintf(in, sizeof(in), "a X");
	for (int i = 0; i < IMAP_ARGS_MAX; i++)
		n += (size_t)snprintf(in + n, sizeof(in) - n, " %d", i % 10);
	n += (size_t)snprintf(in + n, sizeof(in) - n, "\r\n");
	run = parse_n(DEFAULT_MAX, in, n);
	ASSERT_NRES(run, 1);
	ASSERT_DONE(&run->res[0], "a", "X", IMAP_ARGS_MAX);

	/* ... one more is not, whatever its kind. */
	/* (A refused {1} literal is never sent, so no data follows it.) */
	static const char *const extra[] = { "z", "\"z\"", "(", "{1}", "{1+}\r\nz" };
	for (size_t e = 0; e < sizeof(extra) / sizeof(extra[0]); e++) {
		n = (size_t)snprintf(in, sizeof(in), "a X");
		for (int i = 0; i < IMAP_ARGS_MAX; i++)
			n += (size_t)snprintf(in + n, sizeof(in) - n, " %d", i % 10);
		n += (size_t)snprintf(in + n, sizeof(in) - n, " %s\r\nb NOOP\r\n",
		    extra[e]);
		run = parse_n(DEFAULT_MAX, in, n);
		ck_assert_msg(run->nres >= 1, "extra %s", extra[e]);
		ASSERT_ERROR(&run->res[0], "too many arguments",
		    strstr(extra[e], "+}") != NULL);
		if (!run->res[0].fatal) {
			ASSERT_NRES(run, 2);
			ASSERT_DONE(&run->res[1], "b", "NOOP", 0);
		}
	}
}
END_TEST

START_TEST(test_bad_line_announcing_nonsync_literal)
{
	/*
	 * The line is bad, but it ends in {5+}: the client sends the literal
	 * without waiting, and those bytes cannot be told from commands.
	 */
	const struct run *run = parse(DEFAULT_MAX,
	    "a LOGIN \"\\q\" {5+}\r\nb NOO\r\n\r\nc NOOP\r\n");

	ASSERT_NRES(run, 2);
	ASSERT_ERROR(&run->res[0], "invalid escape in quoted string", false);
	ck_assert(run->res[0].skipping);
	ck_assert_int_eq(run->res[1].r, IMAP_PARSE_ERROR);
	ck_assert(run->res[1].fatal);
	ck_assert_uint_eq(run->res[1].end, strlen("a LOGIN \"\\q\" {5+}\r\n"));
	ck_assert(run->stopped);

	/* LF-only ending, and a long skipped tail, are recognised too. */
	run = parse(DEFAULT_MAX,
	    "a LOGIN \"\\q\" xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx {123+}\nb NOOP\r\n");
	ASSERT_NRES(run, 2);
	ck_assert(run->res[1].fatal);

	/* A synchronising literal on a bad line is harmless: no "+" is sent. */
	run = parse(DEFAULT_MAX, "a LOGIN \"\\q\" {5}\r\nb NOOP\r\n");
	ASSERT_NRES(run, 2);
	ASSERT_ERROR(&run->res[0], "invalid escape in quoted string", false);
	ASSERT_DONE(&run->res[1], "b", "NOOP", 0);

	/* Nor is "{5+}" that is not at the end of the line. */
	run = parse(DEFAULT_MAX, "a LOGIN \"\\q\" {5+} x\r\nb NOOP\r\n");
	ASSERT_NRES(run, 2);
	ASSERT_DONE(&run->res[1], "b", "NOOP", 0);
}
END_TEST

START_TEST(test_bad_line_ending_in_non_literal_recovers)
{
	/* "{+}" has no length: not a literal, so the parser must recover. */
	const struct run *run = parse(DEFAULT_MAX,
	    "a LOGIN \"\\q\" {+}\r\nb NOOP\r\n");

	ASSERT_NRES(run, 2);
	ASSERT_ERROR(&run->res[0], "invalid escape in quoted string", false);
	ASSERT_DONE(&run->res[1], "b", "NOOP", 0);

	run = parse(DEFAULT_MAX, "a LOGIN \"\\q\" {+}\nb NOOP\r\n");
	ASSERT_NRES(run, 2);
	ASSERT_DONE(&run->res[1], "b", "NOOP", 0);
}
END_TEST

START_TEST(test_too_long_line_ending_in_nonsync_literal)
{
	/*
	 * Like the above, but the line is bad because it is too long and the
	 * limit is passed inside the "{5+}\r\n" header itself.  The client
	 * still sends 5 literal bytes without waiting; they must not be
	 * parsed as a command: either the error is fatal or the parser skips
	 * the literal and the rest of its line.
	 */
	const char *tail = "{5+}\r\n";

	for (size_t k = 0; k < strlen(tail); k++) {
		char in[256];
		const struct run *run;
		int n;

		/* The byte that passes max=64 is tail[k]. */
		n = snprintf(in, sizeof(in), "a LOGIN %0*d %s", (int)(64 - 9 - k),
		    0, tail);
		ck_assert_int_eq(n, 64 + (int)(strlen(tail) - k));
		snprintf(in + n, sizeof(in) - (size_t)n, "hello\r\nb NOOP\r\n");
		run = parse(64, in);
		ck_assert_uint_ge(run->nres, 1);
		ASSERT_ERROR(&run->res[0], "command line too long",
		    run->res[0].fatal);
		if (run->stopped)
			continue;
		/* Not fatal: then "hello" must have been skipped. */
		ck_assert_msg(run->nres == 2 && run->res[1].r == IMAP_PARSE_DONE &&
		    strcmp(run->res[1].tag, "b") == 0,
		    "limit passed at '%c' of {5+}: literal data parsed as a "
		    "command (%zu results, second: %d %s)", tail[k] == '\r' ? 'r' :
		    tail[k] == '\n' ? 'n' : tail[k], run->nres,
		    run->nres > 1 ? (int)run->res[1].r : 0,
		    run->nres > 1 && run->res[1].error ? run->res[1].error : "");
	}
}
END_TEST

START_TEST(test_tag_rejected_chars)
{
	const char *bad[] = {
		"a+b NOOP\r\n", "+ NOOP\r\n", "a*b NOOP\r\n", "a%b NOOP\r\n",
		"a(b NOOP\r\n", "a\"b NOOP\r\n", "a\\b NOOP\r\n", "a{b NOOP\r\n",
		" NOOP\r\n", "a\x01 NOOP\r\n", "a\x7f NOOP\r\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char in[64];
		const struct run *run;

		snprintf(in, sizeof(in), "%sz NOOP\r\n", bad[i]);
		run = parse(DEFAULT_MAX, in);
		ck_assert_msg(run->nres == 2, "tag %zu: %zu results", i, run->nres);
		ASSERT_ERROR(&run->res[0], "invalid tag", false);
		ASSERT_DONE(&run->res[1], "z", "NOOP", 0);
	}
}
END_TEST

START_TEST(test_tag_and_command_length)
{
	char in[256];
	const struct run *run;

	snprintf(in, sizeof(in), "%0*d NOOP\r\n", IMAP_TAG_MAX, 7);
	run = parse(DEFAULT_MAX, in);
	ASSERT_NRES(run, 1);
	ck_assert_int_eq(run->res[0].r, IMAP_PARSE_DONE);
	ck_assert_uint_eq(strlen(run->res[0].tag), IMAP_TAG_MAX);

	snprintf(in, sizeof(in), "%0*d NOOP\r\nb NOOP\r\n", IMAP_TAG_MAX + 1, 7);
	run = parse(DEFAULT_MAX, in);
	ASSERT_NRES(run, 2);
	ASSERT_ERROR(&run->res[0], "invalid tag", false);
	ASSERT_DONE(&run->res[1], "b", "NOOP", 0);

	snprintf(in, sizeof(in), "a %.*s\r\n", IMAP_CMD_MAX,
	    "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX");
	run = parse(DEFAULT_MAX, in);
	ASSERT_NRES(run, 1);
	ck_assert_int_eq(run->res[0].r, IMAP_PARSE_DONE);
	ck_assert_uint_eq(strlen(run->res[0].cmd), IMAP_CMD_MAX);

	snprintf(in, sizeof(in), "a %.*s\r\nb NOOP\r\n", IMAP_CMD_MAX + 1,
	    "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX");
	run = parse(DEFAULT_MAX, in);
	ASSERT_NRES(run, 2);
	ASSERT_ERROR(&run->res[0], "invalid command name", false);
	ASSERT_DONE(&run->res[1], "b", "NOOP", 0);
}
END_TEST

START_TEST(test_trailing_space_rejected)
{
	const struct run *run = parse(DEFAULT_MAX,
	    "a LOGIN x \r\nb NOOP\r\n");

	ASSERT_NRES(run, 2);
	ck_assert_int_eq(run->res[0].r, IMAP_PARSE_ERROR);
	ck_assert(!run->res[0].fatal);
	ASSERT_DONE(&run->res[1], "b", "NOOP", 0);
}
END_TEST

START_TEST(test_reset_after_error_at_line_end)
{
	/* An error found on the LF needs no skipping. */
	const struct run *run = parse(DEFAULT_MAX, "a ID (\nb NOOP\n");

	ASSERT_NRES(run, 2);
	ck_assert_int_eq(run->res[0].r, IMAP_PARSE_ERROR);
	ck_assert(!run->res[0].skipping);
	ck_assert_uint_eq(run->res[0].end, 7);
	ASSERT_DONE(&run->res[1], "b", "NOOP", 0);
}
END_TEST

START_TEST(test_parser_reuse_and_free)
{
	struct imap_parser p;
	size_t used;

	/* Free without ever allocating, and twice. */
	imap_parser_init(&p, 128);
	imap_parser_free(&p);
	imap_parser_free(&p);

	imap_parser_init(&p, 128);
	imap_parser_reset(&p);
	for (int i = 0; i < 100; i++) {
		ck_assert_int_eq(imap_parser_feed(&p, "a LOGIN \"u\" \"p\"\r\n", 17,
		    &used), IMAP_PARSE_DONE);
		ck_assert_uint_eq(used, 17);
		ck_assert_uint_eq(p.nargs, 2);
		ck_assert_str_eq(p.args[0].str, "u");
		imap_parser_reset(&p);
	}
	imap_parser_free(&p);
}
END_TEST

static Suite *
imap_parse_suite(void)
{
	Suite *s = suite_create("imap_parse");
	TCase *tc;

	tc = tcase_create("basics");
	tcase_add_test(tc, test_simple_command);
	tcase_add_test(tc, test_tag_and_command_chars);
	tcase_add_test(tc, test_atoms);
	tcase_add_test(tc, test_quoted_strings);
	tcase_add_test(tc, test_quoted_special_chars);
	tcase_add_test(tc, test_utf8_quoted);
	tcase_add_test(tc, test_utf8_atom);
	tcase_add_test(tc, test_lf_only);
	tcase_add_test(tc, test_parser_reuse_and_free);
	suite_add_tcase(s, tc);

	tc = tcase_create("literals");
	tcase_add_test(tc, test_sync_literal);
	tcase_add_test(tc, test_nonsync_literal);
	tcase_add_test(tc, test_literal_mixed_with_quoted);
	tcase_add_test(tc, test_literal_split_everywhere);
	tcase_add_test(tc, test_zero_length_literals);
	tcase_add_test(tc, test_literal_with_crlf_and_nul);
	tcase_add_test(tc, test_literal_lf_only_header);
	tcase_add_test(tc, test_literal_bad_length);
	tcase_add_test(tc, test_literal_header_not_at_end);
	suite_add_tcase(s, tc);

	tc = tcase_create("lists");
	tcase_add_test(tc, test_id_list);
	tcase_add_test(tc, test_id_nil);
	tcase_add_test(tc, test_nested_lists);
	tcase_add_test(tc, test_lists_nested_too_deeply);
	tcase_add_test(tc, test_unbalanced_parens);
	suite_add_tcase(s, tc);

	tc = tcase_create("pipelining");
	tcase_add_test(tc, test_pipelining_consumed);
	tcase_add_test(tc, test_pipelining_after_literal);
	tcase_add_test(tc, test_many_pipelined);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_test(tc, test_oversize_sync_literal);
	tcase_add_test(tc, test_oversize_literal_huge_length);
	tcase_add_test(tc, test_oversize_nonsync_literal_fatal);
	tcase_add_test(tc, test_literal_limit_boundary);
	tcase_add_test(tc, test_line_length_boundary);
	tcase_add_test(tc, test_100k_line);
	tcase_add_test(tc, test_long_quoted_and_literal_data);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_test(tc, test_bad_escape);
	tcase_add_test(tc, test_line_break_in_quoted);
	tcase_add_test(tc, test_nul_in_quoted);
	tcase_add_test(tc, test_missing_command);
	tcase_add_test(tc, test_empty_command_name);
	tcase_add_test(tc, test_cr_without_lf);
	tcase_add_test(tc, test_missing_space_between_args);
	tcase_add_test(tc, test_too_many_args);
	tcase_add_test(tc, test_bad_line_announcing_nonsync_literal);
	tcase_add_test(tc, test_bad_line_ending_in_non_literal_recovers);
	tcase_add_test(tc, test_too_long_line_ending_in_nonsync_literal);
	tcase_add_test(tc, test_tag_rejected_chars);
	tcase_add_test(tc, test_tag_and_command_length);
	tcase_add_test(tc, test_trailing_space_rejected);
	tcase_add_test(tc, test_reset_after_error_at_line_end);
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(imap_parse_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
