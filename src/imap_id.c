#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_id.h"
#include "username.h"
#include "util.h"

void
imap_id_clear(struct imap_id *id)
{
	for (size_t i = 0; i < id->npairs; i++) {
		free(id->pairs[i].field);
		free(id->pairs[i].value);
	}
	memset(id, 0, sizeof(*id));
}

bool
imap_id_reserved(const char *field)
{
	return strncasecmp(field, "x-", 2) == 0;
}

static bool
is_nil(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_ATOM && strcasecmp(a->str, "NIL") == 0;
}

/* Can a quoted string carry it?  No controls; 8-bit only as UTF-8. */
static bool
quotable_text(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return utf8_valid(s, len);
}

static bool
seen_field(const struct imap_id *id, const char *field)
{
	for (size_t i = 0; i < id->npairs; i++)
		if (strcasecmp(id->pairs[i].field, field) == 0)
			return true;
	return false;
}

int
imap_id_parse(const struct imap_arg *args, size_t nargs, struct imap_id *id,
    const char **error_r)
{
	size_t n;

	imap_id_clear(id);
	if (nargs == 1 && is_nil(&args[0]))
		return 0;
	if (nargs < 2 || args[0].type != IMAP_ARG_LIST_START ||
	    args[nargs - 1].type != IMAP_ARG_LIST_END) {
		*error_r = "ID expects NIL or a list of field/value pairs";
		return -1;
	}
	args++;
	n = nargs - 2;
	if (n % 2 != 0) {
		*error_r = "ID list must hold field/value pairs";
		return -1;
	}
	if (n / 2 > IMAP_ID_PAIRS_MAX) {
		*error_r = "ID list holds more than 30 pairs";
		return -1;
	}
	for (size_t i = 0; i < n; i += 2) {
		const struct imap_arg *f = &args[i], *v = &args[i + 1];

		if (f->type != IMAP_ARG_STRING ||
		    (v->type != IMAP_ARG_STRING && !is_nil(v))) {
			*error_r = "ID fields are strings, values strings or NIL";
			imap_id_clear(id);
			return -1;
		}
		if (f->len == 0 || f->len > IMAP_ID_FIELD_MAX ||
		    (v->type == IMAP_ARG_STRING && v->len > IMAP_ID_VALUE_MAX)) {
			*error_r = "ID field or value too long";
			imap_id_clear(id);
			return -1;
		}
		if (!quotable_text(f->str, f->len) || imap_id_reserved(f->str) ||
		    seen_field(id, f->str) ||
		    (v->type == IMAP_ARG_STRING && !quotable_text(v->str, v->len)))
			continue;
		id->pairs[id->npairs].field = xstrndup(f->str, f->len);
		id->pairs[id->npairs].value = v->type == IMAP_ARG_STRING ?
		    xstrndup(v->str, v->len) : NULL;
		id->npairs++;
	}
	return 0;
}

static void
append_quoted(struct buf *b, const char *s)
{
	(void)buf_append(b, "\"", 1);
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			(void)buf_append(b, "\\", 1);
		(void)buf_append(b, s, 1);
	}
	(void)buf_append(b, "\"", 1);
}

/* One pair, or nothing at all when it does not fit. */
static int
append_pair(struct buf *b, const struct imap_id_pair *p, bool first,
    size_t limit)
{
	struct buf tmp;
	int rc;

	/* Worst case: every byte escaped, plus quotes and spaces. */
	buf_init(&tmp, 2 * (strlen(p->field) + (p->value ? strlen(p->value) : 3)) + 8);
	if (!first)
		(void)buf_append(&tmp, " ", 1);
	append_quoted(&tmp, p->field);
	(void)buf_append(&tmp, " ", 1);
	if (p->value != NULL)
		append_quoted(&tmp, p->value);
	else
		(void)buf_append(&tmp, "NIL", 3);
	rc = buf_len(&tmp) <= limit ? buf_append(b, buf_head(&tmp), buf_len(&tmp)) : -1;
	buf_free(&tmp);
	return rc;
}

int
imap_id_format(struct buf *b, const struct imap_id_pair *ours, size_t nours,
    const struct imap_id *client)
{
	size_t start = buf_len(b), npairs = 0;

	/* Room for the closing parenthesis is kept back throughout. */
	if (buf_append(b, "(", 1) < 0)
		return -1;
	for (size_t i = 0; i < nours; i++, npairs++) {
		if (append_pair(b, &ours[i], i == 0, SIZE_MAX) < 0 ||
		    buf_room(b) < 1) {
			buf_truncate(b, start);
			return -1;
		}
	}
	for (size_t i = 0; client != NULL && i < client->npairs &&
	    npairs < IMAP_ID_PAIRS_MAX; i++) {
		size_t used = buf_len(b) - start + 1;

		if (used >= IMAP_ID_WIRE_MAX || buf_room(b) < 2)
			break;
		if (append_pair(b, &client->pairs[i], npairs == 0,
		    IMAP_ID_WIRE_MAX - used < buf_room(b) - 1 ?
		    IMAP_ID_WIRE_MAX - used : buf_room(b) - 1) == 0)
			npairs++;
	}
	return buf_append(b, ")", 1);
}
