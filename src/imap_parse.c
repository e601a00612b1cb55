#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "imap_parse.h"
#include "util.h"

/* First allocation of the argument arena; it doubles from here. */
#define IMAP_ARENA_MIN	256

enum {
	P_TAG,
	P_CMD,
	P_ARG_START,
	P_ATOM,
	P_QUOTED,
	P_QUOTED_ESC,
	P_AFTER_ARG,
	P_LIT_LEN,
	P_LIT_CLOSE,
	P_LIT_CR,
	P_LIT_LF,
	P_LIT_DATA,
	P_CR,
	P_SKIP,
};

void
imap_parser_init(struct imap_parser *p, size_t max)
{
	memset(p, 0, sizeof(*p));
	p->max = max;
}

void
imap_parser_init_untagged(struct imap_parser *p, size_t max)
{
	imap_parser_init(p, max);
	p->untagged = true;
	p->state = P_CMD;
}

/* Where a line starts: at its tag, or at its command when there is none. */
static int
line_start(const struct imap_parser *p)
{
	if (p->args_only)
		return P_ARG_START;
	return p->untagged ? P_CMD : P_TAG;
}

void
imap_parser_reset(struct imap_parser *p)
{
	if (p->arena != NULL && p->arenalen > 0)
		explicit_bzero(p->arena, p->arenalen);	/* may hold a password */
	p->state = line_start(p);
	p->used = p->taglen = p->cmdlen = p->arenalen = p->nargs = 0;
	p->tag[0] = p->cmd[0] = '\0';
	p->depth = 0;
	p->error = NULL;
	p->fatal = false;
	p->skiplen = 0;
}

void
imap_parser_free(struct imap_parser *p)
{
	if (p->arena != NULL) {
		explicit_bzero(p->arena, p->arenacap);
		free(p->arena);
	}
	p->arena = NULL;
	p->arenacap = 0;
}

/*
 * Make room for `need` arena bytes.  The arena starts small and doubles up
 * to max + 1, so a session that sends a short command holds a short arena.
 * It moves by copy and wipe, not realloc: it may hold a password.
 */
static void
arena_reserve(struct imap_parser *p, size_t need)
{
	size_t cap = p->arenacap ? p->arenacap : IMAP_ARENA_MIN;
	char *n;

	if (need <= p->arenacap)
		return;
	while (cap < need)
		cap *= 2;
	if (cap > p->max + 1)
		cap = p->max + 1;
	n = xmalloc(cap);
	if (p->arena != NULL) {
		memcpy(n, p->arena, p->arenalen);
		for (size_t i = 0; i < p->nargs; i++)
			p->args[i].str = n + (p->args[i].str - p->arena);
		explicit_bzero(p->arena, p->arenacap);
		free(p->arena);
	}
	p->arena = n;
	p->arenacap = cap;
}

bool
imap_parser_skipping(const struct imap_parser *p)
{
	return p->state == P_SKIP;
}

static bool
is_tag_char(unsigned char c)
{
	return c > 0x20 && c != 0x7f && c != '(' && c != ')' && c != '{' &&
	    c != '%' && c != '*' && c != '"' && c != '\\' && c != '+';
}

/* Atoms here are lenient: 8-bit bytes pass (raw UTF-8 user names). */
static bool
is_atom_char(unsigned char c)
{
	return c > 0x20 && c != 0x7f && c != '(' && c != ')' && c != '{' &&
	    c != '"' && c != '\\';
}

static enum imap_parse_result
fail(struct imap_parser *p, const char *why, unsigned char c)
{
	int was = p->state;

	p->error = why;
	/*
	 * The skipped line's tail tells whether a non-synchronising literal
	 * follows it; rebuild what the tail of a literal header looked like.
	 */
	p->skiplen = 0;
	if (was == P_LIT_LEN || was == P_LIT_CR || was == P_LIT_LF) {
		p->skiptail[p->skiplen++] = '{';
		for (unsigned i = 0; i < p->litdigits && i < 8; i++)
			p->skiptail[p->skiplen++] = '1';
		if (p->litplus)
			p->skiptail[p->skiplen++] = '+';
		if (was != P_LIT_LEN)
			p->skiptail[p->skiplen++] = '}';
	}
	if (c == '\n') {
		p->state = line_start(p);
		if (was == P_LIT_LF && p->litplus)
			p->fatal = true;
	} else {
		p->state = P_SKIP;
		p->skiptail[p->skiplen++] = (char)c;
	}
	return IMAP_PARSE_ERROR;
}

/* Start an argument of `type` in the arena. */
static int
arg_open(struct imap_parser *p, enum imap_arg_type type)
{
	if (p->nargs == IMAP_ARGS_MAX)
		return -1;
	arena_reserve(p, p->arenalen + 1);
	p->args[p->nargs].type = type;
	p->args[p->nargs].literal = false;
	p->argstart = p->arenalen;
	return 0;
}

/* Close the open argument: NUL-terminate it in the arena. */
static void
arg_close(struct imap_parser *p)
{
	struct imap_arg *a = &p->args[p->nargs++];

	arena_reserve(p, p->arenalen + 1);
	a->str = p->arena + p->argstart;
	a->len = p->arenalen - p->argstart;
	p->arena[p->arenalen++] = '\0';
}

static int
arena_add(struct imap_parser *p, char c)
{
	/* +1 keeps room for the closing NUL. */
	if (p->arenalen + 1 >= p->max)
		return -1;
	arena_reserve(p, p->arenalen + 2);
	p->arena[p->arenalen++] = c;
	return 0;
}

static int
list_token(struct imap_parser *p, enum imap_arg_type type)
{
	if (arg_open(p, type) < 0)
		return -1;
	arg_close(p);
	return 0;
}

/* Does the skipped line end in a non-synchronising literal "{n+}\r"? */
static bool
skipped_line_announced_literal(const struct imap_parser *p)
{
	const char *t = p->skiptail;
	size_t n = p->skiplen, plus;

	if (n > 0 && t[n - 1] == '\r')
		n--;
	if (n < 3 || t[n - 1] != '}')
		return false;
	if (t[n - 2] == '+')
		plus = n - 2;
	else if (p->untagged)
		plus = n - 1;	/* "{n}" does not wait either */
	else
		return false;
	for (n = plus; n > 0 && t[n - 1] >= '0' && t[n - 1] <= '9'; n--)
		;
	/* At least one digit between '{' and '+'. */
	return n > 0 && n < plus && t[n - 1] == '{';
}

static enum imap_parse_result
end_of_line(struct imap_parser *p, unsigned char c)
{
	if (p->depth != 0)
		return fail(p, "unbalanced parentheses", c);
	p->state = line_start(p);
	return IMAP_PARSE_DONE;
}

enum imap_parse_result
imap_parser_feed(struct imap_parser *p, const char *data, size_t len,
    size_t *consumed_r)
{
	size_t i = 0;
	enum imap_parse_result r = IMAP_PARSE_MORE;

	while (i < len) {
		unsigned char c = (unsigned char)data[i];

		if (p->state == P_SKIP) {
			i++;
			if (c != '\n') {
				if (p->skiplen == sizeof(p->skiptail)) {
					memmove(p->skiptail, p->skiptail + 1, p->skiplen - 1);
					p->skiplen--;
				}
				p->skiptail[p->skiplen++] = (char)c;
				continue;
			}
			if (skipped_line_announced_literal(p)) {
				p->error = "cannot resynchronise after a bad line "
				    "announcing a literal";
				p->fatal = true;
				r = IMAP_PARSE_ERROR;
				break;
			}
			imap_parser_reset(p);
			continue;
		}
		if (p->state == P_LIT_DATA) {
			size_t n = len - i < p->litleft ? len - i : p->litleft;

			arena_reserve(p, p->arenalen + n + 1);
			memcpy(p->arena + p->arenalen, data + i, n);
			p->arenalen += n;
			p->used += n;
			p->litleft -= n;
			i += n;
			if (p->litleft == 0) {
				arg_close(p);
				p->state = P_AFTER_ARG;
			}
			continue;
		}

		i++;
		if (++p->used > p->max) {
			r = fail(p, "command line too long", c);
			break;
		}
		switch (p->state) {
		case P_TAG:
			if (c == ' ' && p->taglen > 0) {
				p->state = P_CMD;
			} else if (is_tag_char(c) && p->taglen < IMAP_TAG_MAX) {
				p->tag[p->taglen++] = (char)c;
				p->tag[p->taglen] = '\0';
			} else {
				r = fail(p, c == '\n' || c == '\r' ? "missing command" :
				    "invalid tag", c);
				goto out;
			}
			break;
		case P_CMD:
			if (c == ' ' && p->cmdlen > 0)
				p->state = P_ARG_START;
			else if (c == '\r' && p->cmdlen > 0)
				p->state = P_CR;
			else if (c == '\n' && p->cmdlen > 0) {
				r = end_of_line(p, c);
				goto out;
			} else if (is_atom_char(c) && p->cmdlen < IMAP_CMD_MAX) {
				p->cmd[p->cmdlen++] = (char)c;
				p->cmd[p->cmdlen] = '\0';
			} else {
				r = fail(p, "invalid command name", c);
				goto out;
			}
			break;
		case P_ARG_START:
			if (c == '"') {
				if (arg_open(p, IMAP_ARG_STRING) < 0)
					goto too_many;
				p->state = P_QUOTED;
			} else if (c == '{') {
				p->litlen = 0;
				p->litdigits = 0;
				p->litplus = false;
				p->state = P_LIT_LEN;
			} else if (c == '(') {
				if (p->depth == IMAP_DEPTH_MAX) {
					r = fail(p, "lists nested too deeply", c);
					goto out;
				}
				if (list_token(p, IMAP_ARG_LIST_START) < 0)
					goto too_many;
				p->depth++;
			} else if (c == ')' && p->depth > 0) {
				goto close_list;
			} else if (is_atom_char(c)) {
				if (arg_open(p, IMAP_ARG_ATOM) < 0)
					goto too_many;
				if (arena_add(p, (char)c) < 0)
					goto too_long;
				p->state = P_ATOM;
			} else if (c == '\r' && p->depth > 0) {
				r = fail(p, "unbalanced parentheses", c);
				goto out;
			} else {
				r = fail(p, "unexpected character", c);
				goto out;
			}
			break;
		case P_ATOM:
			if (is_atom_char(c)) {
				if (arena_add(p, (char)c) < 0)
					goto too_long;
				break;
			}
			arg_close(p);
			p->state = P_AFTER_ARG;
			goto after_arg;
		case P_QUOTED:
			if (c == '"') {
				arg_close(p);
				p->state = P_AFTER_ARG;
			} else if (c == '\\')
				p->state = P_QUOTED_ESC;
			else if (c == '\r' || c == '\n' || c == '\0') {
				r = fail(p, "line break or NUL in quoted string", c);
				goto out;
			} else if (arena_add(p, (char)c) < 0)
				goto too_long;
			break;
		case P_QUOTED_ESC:
			if (c != '"' && c != '\\') {
				r = fail(p, "invalid escape in quoted string", c);
				goto out;
			}
			if (arena_add(p, (char)c) < 0)
				goto too_long;
			p->state = P_QUOTED;
			break;
		case P_AFTER_ARG:
		after_arg:
			if (c == ' ')
				p->state = P_ARG_START;
			else if (c == ')' && p->depth > 0) {
		close_list:
				if (list_token(p, IMAP_ARG_LIST_END) < 0)
					goto too_many;
				p->depth--;
				p->state = P_AFTER_ARG;
			} else if (c == '\r')
				p->state = P_CR;
			else if (c == '\n') {
				r = end_of_line(p, c);
				goto out;
			} else {
				r = fail(p, "missing space between arguments", c);
				goto out;
			}
			break;
		case P_LIT_LEN:
			if (c >= '0' && c <= '9' && !p->litplus) {
				p->litdigits++;
				p->litlen = p->litlen * 10 + (unsigned)(c - '0');
				/* Clamp: refused at the header's end anyway. */
				if (p->litlen > p->max)
					p->litlen = (unsigned long long)p->max + 1;
			} else if (c == '+' && !p->litplus && p->litdigits > 0)
				p->litplus = true;
			else if (c == '}' && p->litdigits > 0) {
				/* No continuation request exists to wait for. */
				if (p->untagged)
					p->litplus = true;
				p->state = P_LIT_CR;
			} else {
				r = fail(p, "invalid literal length", c);
				goto out;
			}
			break;
		case P_LIT_CR:
			if (c == '\r') {
				p->state = P_LIT_LF;
				break;
			}
			if (c != '\n') {
				r = fail(p, "literal header must end the line", c);
				goto out;
			}
			FALLTHROUGH;
		case P_LIT_LF:
			if (c != '\n') {
				r = fail(p, "literal header must end the line", c);
				goto out;
			}
			if (p->litlen + p->used > p->max ||
			    p->arenalen + p->litlen + 1 >= p->max) {
				p->error = "literal too large";
				/*
				 * A client waiting for "+" sends nothing more of
				 * this command; one that did not wait is already
				 * sending bytes we cannot tell from commands.
				 */
				p->fatal = p->litplus;
				p->state = line_start(p);
				r = IMAP_PARSE_ERROR;
				goto out;
			}
			if (arg_open(p, IMAP_ARG_STRING) < 0) {
				p->fatal = p->litplus;
				goto too_many;
			}
			p->args[p->nargs].literal = true;
			p->litleft = (size_t)p->litlen;
			if (p->litleft == 0) {
				arg_close(p);
				p->args[p->nargs - 1].literal = true;
				p->state = P_AFTER_ARG;
			} else
				p->state = P_LIT_DATA;
			if (!p->litplus) {
				r = IMAP_PARSE_LITERAL;
				goto out;
			}
			break;
		case P_CR:
			if (c != '\n') {
				r = fail(p, "CR without LF", c);
				goto out;
			}
			r = end_of_line(p, c);
			goto out;
		default:
			abort();
		}
		continue;
	too_many:
		r = fail(p, "too many arguments", c);
		goto out;
	too_long:
		r = fail(p, "command line too long", c);
		goto out;
	}
out:
	*consumed_r = i;
	return r;
}
