/*
 * Fuzz the privilege separation messages (privsep.c): the frame header
 * parser and the files payload decoder, which the child runs on what the
 * parent sends and the parent on what the child sends.  Invariants: the
 * answer is -1 (with a reason), 0 or 1; a frame never claims more bytes
 * than it was given or a payload over PRIVSEP_MSG_MAX; a decoded set of
 * files keeps the bounds, and encoded again it decodes to the same files.
 * The input is tried as a frame and as a bare files payload.
 *
 * The driver's seeds are C strings, so in them byte 0xfe stands for NUL;
 * every input is tried as is and with that substitution.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "privsep.h"

#define Z	"\xfe"
#define N32(b)	Z Z Z b

const char *const fuzz_seeds[] = {
	/* FILES: one file "/k" with "key\n". */
	N32("\x01") N32("\x16") N32("\x01") N32("\x02") "/k" N32(Z) N32("\x04")
	    "key\n",
	/* FILES: one unreadable file (ENOENT), one empty. */
	N32("\x01") N32(" ") N32("\x02") N32("\x02") "/a" N32("\x02")
	    N32(Z) N32("\x02") "/b" N32(Z) N32(Z),
	/* NOTIFY READY=1, RELOAD, RELOAD_ERROR. */
	N32("\x04") N32("\x07") "READY=1",
	N32("\x03") N32(Z),
	N32("\x02") N32("\x03") "why",
	/* A payload length over the cap; an unknown type. */
	N32("\x01") Z "\x40" Z "\x01",
	N32("\x09") N32(Z),
	NULL
};

static void
same_files(const struct privsep_files *a, const struct privsep_files *b)
{
	if (a->n != b->n)
		abort();
	for (size_t i = 0; i < a->n; i++) {
		const struct privsep_file *e = privsep_files_find(b, a->v[i].path);

		if (e == NULL || e->error != a->v[i].error || e->len != a->v[i].len ||
		    (e->len > 0 && memcmp(e->data, a->v[i].data, e->len) != 0))
			abort();
	}
}

static void
round_trip(const struct privsep_files *f)
{
	struct privsep_files *g = NULL;
	struct privsep_frame m;
	struct buf b;
	const char *error;
	size_t used;

	if (f->n > PRIVSEP_FILES_MAX)
		abort();
	for (size_t i = 0; i < f->n; i++)
		if (f->v[i].len > PRIVSEP_FILE_MAX || f->v[i].path[0] == '\0' ||
		    strlen(f->v[i].path) >= PRIVSEP_PATH_MAX ||
		    (f->v[i].error != 0 && f->v[i].data != NULL))
			abort();
	buf_init(&b, PRIVSEP_HDR_LEN + PRIVSEP_MSG_MAX);
	if (privsep_frame_files(&b, f, &error) < 0 ||
	    privsep_frame_parse(buf_head(&b), buf_len(&b), &m, &used, &error) != 1 ||
	    used != buf_len(&b) || m.type != PRIVSEP_MSG_FILES ||
	    privsep_files_decode(m.payload, m.len, &g, &error) < 0)
		abort();
	same_files(f, g);
	privsep_files_free(&g);
	buf_free(&b);
}

static void
check_one(const char *data, size_t size)
{
	struct privsep_files *f = NULL;
	struct privsep_frame m;
	const char *error = NULL;
	char text[64];
	size_t used = 0;
	int rc;

	rc = privsep_frame_parse(data, size, &m, &used, &error);
	if (rc < -1 || rc > 1 || (rc == -1 && error == NULL))
		abort();
	if (rc == 1) {
		if (used > size || used != PRIVSEP_HDR_LEN + m.len ||
		    m.len > PRIVSEP_MSG_MAX || m.payload != data + PRIVSEP_HDR_LEN)
			abort();
		if (m.type == PRIVSEP_MSG_FILES &&
		    privsep_files_decode(m.payload, m.len, &f, &error) == 0) {
			round_trip(f);
			privsep_files_free(&f);
		} else if (m.type != PRIVSEP_MSG_FILES &&
		    privsep_text_decode(m.payload, m.len, text, sizeof(text),
		    &error) == 0 && strlen(text) != m.len)
			abort();
	}
	if (privsep_files_decode(data, size, &f, &error) == 0) {
		round_trip(f);
		privsep_files_free(&f);
	} else if (f != NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy;

	check_one((const char *)data, size);
	if (size == 0 || memchr(data, 0xfe, size) == NULL)
		return 0;
	copy = malloc(size);
	if (copy == NULL)
		return 0;
	for (size_t i = 0; i < size; i++)
		copy[i] = data[i] == 0xfe ? 0 : (char)data[i];
	check_one(copy, size);
	free(copy);
	return 0;
}
