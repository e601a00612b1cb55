/*
 * Unit tests for the privileged parent's messages and the file source
 * (src/privsep.h): framing round trips, the size caps, truncated and
 * malformed input, byte-at-a-time parsing.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "privsep.h"

#define OUT_MAX	(PRIVSEP_HDR_LEN + PRIVSEP_MSG_MAX)
#define str_copy_test(dst, src) \
	snprintf((dst), sizeof(dst), "%s", (src))

static void
put32(char *p, uint32_t v)
{
	v = htonl(v);
	memcpy(p, &v, 4);
}

static struct privsep_files *
sample(void)
{
	struct privsep_files *f = privsep_files_new();
	const char *error;
	static const char bin[] = { 'a', '\0', 'b', '\n' };

	ck_assert_int_eq(privsep_files_add(f, "/etc/postern/postern.conf", 0,
	    "daemon = {};\n", 13, &error), 0);
	ck_assert_int_eq(privsep_files_add(f, "/etc/postern/key.pem", 0, bin,
	    sizeof(bin), &error), 0);
	ck_assert_int_eq(privsep_files_add(f, "/etc/postern/missing", ENOENT,
	    NULL, 0, &error), 0);
	ck_assert_int_eq(privsep_files_add(f, "/etc/postern/empty", 0, "", 0,
	    &error), 0);
	return f;
}

START_TEST(test_files_round_trip)
{
	struct privsep_files *f = sample(), *g = NULL;
	struct privsep_frame m;
	const struct privsep_file *e;
	struct buf b;
	const char *error;
	size_t used;

	buf_init(&b, OUT_MAX);
	ck_assert_int_eq(privsep_frame_files(&b, f, &error), 0);
	ck_assert_int_eq(privsep_frame_parse(buf_head(&b), buf_len(&b), &m, &used,
	    &error), 1);
	ck_assert_uint_eq(used, buf_len(&b));
	ck_assert_int_eq(m.type, PRIVSEP_MSG_FILES);
	ck_assert_int_eq(privsep_files_decode(m.payload, m.len, &g, &error), 0);
	ck_assert_uint_eq(g->n, 4);
	e = privsep_files_find(g, "/etc/postern/key.pem");
	ck_assert_ptr_nonnull(e);
	ck_assert_uint_eq(e->len, 4);
	ck_assert_int_eq(memcmp(e->data, "a\0b\n", 4), 0);
	e = privsep_files_find(g, "/etc/postern/missing");
	ck_assert_int_eq(e->error, ENOENT);
	ck_assert_ptr_null(e->data);
	e = privsep_files_find(g, "/etc/postern/empty");
	ck_assert_uint_eq(e->len, 0);
	ck_assert_str_eq(e->data, "");
	ck_assert_ptr_null(privsep_files_find(g, "/etc/postern"));
	privsep_files_free(&g);
	privsep_files_free(&f);
	ck_assert_ptr_null(f);
	buf_free(&b);
}
END_TEST

START_TEST(test_text_round_trip)
{
	struct privsep_frame m;
	struct buf b;
	const char *error;
	char text[16];
	size_t used;

	buf_init(&b, 64);
	ck_assert_int_eq(privsep_frame_text(&b, PRIVSEP_MSG_NOTIFY, "READY=1",
	    &error), 0);
	ck_assert_int_eq(privsep_frame_text(&b, PRIVSEP_MSG_RELOAD, "", &error), 0);
	ck_assert_int_eq(privsep_frame_parse(buf_head(&b), buf_len(&b), &m, &used,
	    &error), 1);
	ck_assert_int_eq(m.type, PRIVSEP_MSG_NOTIFY);
	ck_assert_int_eq(privsep_text_decode(m.payload, m.len, text, sizeof(text),
	    &error), 0);
	ck_assert_str_eq(text, "READY=1");
	buf_consume(&b, used);
	ck_assert_int_eq(privsep_frame_parse(buf_head(&b), buf_len(&b), &m, &used,
	    &error), 1);
	ck_assert_int_eq(m.type, PRIVSEP_MSG_RELOAD);
	ck_assert_uint_eq(m.len, 0);
	/* Too long for the receiver's string, or with a NUL. */
	ck_assert_int_eq(privsep_text_decode("0123456789abcdef", 16, text,
	    sizeof(text), &error), -1);
	ck_assert_int_eq(privsep_text_decode("a\0b", 3, text, sizeof(text),
	    &error), -1);
	/* The buffer's bound: nothing half-written. */
	buf_free(&b);
	buf_init(&b, 10);
	ck_assert_int_eq(privsep_frame_text(&b, PRIVSEP_MSG_NOTIFY, "READY=1",
	    &error), -1);
	ck_assert_uint_eq(buf_len(&b), 0);
	buf_free(&b);
}
END_TEST

/* Every prefix of a frame needs more; the whole frame parses. */
START_TEST(test_byte_at_a_time)
{
	struct privsep_files *f = sample();
	struct privsep_frame m;
	struct buf b;
	const char *error;
	size_t used;

	buf_init(&b, OUT_MAX);
	ck_assert_int_eq(privsep_frame_files(&b, f, &error), 0);
	for (size_t n = 0; n < buf_len(&b); n++)
		ck_assert_int_eq(privsep_frame_parse(buf_head(&b), n, &m, &used,
		    &error), 0);
	ck_assert_int_eq(privsep_frame_parse(buf_head(&b), buf_len(&b), &m, &used,
	    &error), 1);
	/* And every truncated payload is refused, never read past. */
	for (size_t n = 0; n < m.len; n++) {
		struct privsep_files *g = NULL;
		char *copy = malloc(n ? n : 1);

		memcpy(copy, m.payload, n);
		ck_assert_int_eq(privsep_files_decode(copy, n, &g, &error), -1);
		ck_assert_ptr_null(g);
		free(copy);
	}
	privsep_files_free(&f);
	buf_free(&b);
}
END_TEST

START_TEST(test_frame_rejects)
{
	struct privsep_frame m;
	const char *error;
	char h[PRIVSEP_HDR_LEN];
	size_t used;

	put32(h, 0);
	put32(h + 4, 0);
	ck_assert_int_eq(privsep_frame_parse(h, sizeof(h), &m, &used, &error), -1);
	put32(h, PRIVSEP_MSG_NOTIFY + 1);
	ck_assert_int_eq(privsep_frame_parse(h, sizeof(h), &m, &used, &error), -1);
	/* The payload cap: refused from the header, before any payload. */
	put32(h, PRIVSEP_MSG_FILES);
	put32(h + 4, PRIVSEP_MSG_MAX + 1);
	ck_assert_int_eq(privsep_frame_parse(h, sizeof(h), &m, &used, &error), -1);
	put32(h + 4, UINT32_MAX);
	ck_assert_int_eq(privsep_frame_parse(h, sizeof(h), &m, &used, &error), -1);
	put32(h + 4, PRIVSEP_MSG_MAX);
	ck_assert_int_eq(privsep_frame_parse(h, sizeof(h), &m, &used, &error), 0);
}
END_TEST

/* One hand-built entry: count 1, then path, errno and data as given. */
static int
decode_one(uint32_t plen, const char *path, size_t pl, uint32_t err,
    uint32_t dlen, const char *data, size_t real_dlen, const char *trailer)
{
	struct privsep_files *g = NULL;
	char p[256];
	size_t n = 0;
	const char *error;
	int rc;

	put32(p, 1);
	put32(p + 4, plen);
	memcpy(p + 8, path, pl);
	n = 8 + pl;
	put32(p + n, err);
	put32(p + n + 4, dlen);
	n += 8;
	memcpy(p + n, data, real_dlen);
	n += real_dlen;
	memcpy(p + n, trailer, strlen(trailer));
	n += strlen(trailer);
	rc = privsep_files_decode(p, n, &g, &error);
	privsep_files_free(&g);
	return rc;
}

START_TEST(test_decode_rejects)
{
	struct privsep_files *g = NULL;
	const char *error;
	char p[64];

	ck_assert_int_eq(decode_one(5, "/a/bc", 5, 0, 3, "xyz", 3, ""), 0);
	/* Path length beyond the bytes, zero, with a NUL. */
	ck_assert_int_eq(decode_one(50, "/a/bc", 5, 0, 3, "xyz", 3, ""), -1);
	ck_assert_int_eq(decode_one(0, "", 0, 0, 3, "xyz", 3, ""), -1);
	ck_assert_int_eq(decode_one(5, "/a\0bc", 5, 0, 3, "xyz", 3, ""), -1);
	/* Data length beyond the bytes; data with an error; trailing bytes. */
	ck_assert_int_eq(decode_one(5, "/a/bc", 5, 0, 4, "xyz", 3, ""), -1);
	ck_assert_int_eq(decode_one(5, "/a/bc", 5, ENOENT, 3, "xyz", 3, ""), -1);
	ck_assert_int_eq(decode_one(5, "/a/bc", 5, 0x80000000u, 0, "", 0, ""), -1);
	ck_assert_int_eq(decode_one(5, "/a/bc", 5, 0, 3, "xyz", 3, "!"), -1);
	/* A path length over PRIVSEP_PATH_MAX is refused before it is read. */
	ck_assert_int_eq(decode_one(PRIVSEP_PATH_MAX, "/a/bc", 5, 0, 0, "", 0, ""), -1);
	/* A count over PRIVSEP_FILES_MAX; a count with too few entries. */
	put32(p, PRIVSEP_FILES_MAX + 1);
	ck_assert_int_eq(privsep_files_decode(p, 4, &g, &error), -1);
	put32(p, 2);
	ck_assert_int_eq(privsep_files_decode(p, 4, &g, &error), -1);
	ck_assert_int_eq(privsep_files_decode(p, 3, &g, &error), -1);
	ck_assert_ptr_null(g);
}
END_TEST

START_TEST(test_duplicate_path_refused)
{
	struct privsep_files *g = NULL;
	const char *error;
	char p[64];
	size_t n = 4;

	put32(p, 2);
	for (int i = 0; i < 2; i++) {
		put32(p + n, 2);
		memcpy(p + n + 4, "/x", 2);
		put32(p + n + 6, 0);
		put32(p + n + 10, 0);
		n += 14;
	}
	ck_assert_int_eq(privsep_files_decode(p, n, &g, &error), -1);
	ck_assert_ptr_null(g);
}
END_TEST

START_TEST(test_bounds)
{
	struct privsep_files *f = privsep_files_new();
	char *big = calloc(1, PRIVSEP_FILE_MAX + 1), path[PRIVSEP_PATH_MAX + 1];
	const char *error;
	struct buf b;

	/* One file: at most PRIVSEP_FILE_MAX. */
	ck_assert_int_eq(privsep_files_add(f, "/big", 0, big,
	    PRIVSEP_FILE_MAX + 1, &error), -1);
	/* A path: shorter than PRIVSEP_PATH_MAX, not empty. */
	memset(path, 'p', sizeof(path) - 1);
	path[0] = '/';
	path[PRIVSEP_PATH_MAX] = '\0';
	ck_assert_int_eq(privsep_files_add(f, path, 0, "", 0, &error), -1);
	ck_assert_int_eq(privsep_files_add(f, "", 0, "", 0, &error), -1);
	/* Four files of 1 MiB pass the 4 MiB message; the frame is refused. */
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "/big%d", i);
		ck_assert_int_eq(privsep_files_add(f, path, 0, big, PRIVSEP_FILE_MAX,
		    &error), 0);
	}
	buf_init(&b, OUT_MAX);
	ck_assert_int_eq(privsep_frame_files(&b, f, &error), -1);
	ck_assert_uint_eq(buf_len(&b), 0);
	privsep_files_free(&f);
	/* At most PRIVSEP_FILES_MAX files; a path already there is not new. */
	f = privsep_files_new();
	for (int i = 0; i < PRIVSEP_FILES_MAX; i++) {
		snprintf(path, sizeof(path), "/f%d", i);
		ck_assert_int_eq(privsep_files_add(f, path, 0, "x", 1, &error), 0);
	}
	ck_assert_int_eq(privsep_files_add(f, "/f0", 0, "y", 1, &error), 0);
	ck_assert_int_eq(privsep_files_add(f, "/one-more", 0, "x", 1, &error), -1);
	ck_assert_int_eq(privsep_frame_files(&b, f, &error), 0);
	privsep_files_free(&f);
	buf_free(&b);
	free(big);
}
END_TEST

/* The file source: recorded reads, then served ones, then the disk again. */
START_TEST(test_source)
{
	struct privsep_files *rec = privsep_files_new();
	char tmpl[] = "/tmp/check_privsep.XXXXXX", line[64], *data;
	size_t len;
	FILE *fp;
	int fd = mkstemp(tmpl);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "secret\n", 7), 7);
	close(fd);
	privsep_record(rec);
	ck_assert_ptr_nonnull(fp = privsep_fopen(tmpl));
	fclose(fp);
	ck_assert_ptr_null(privsep_fopen("/nonexistent/check_privsep"));
	privsep_record(NULL);
	ck_assert_uint_eq(rec->n, 2);
	ck_assert_int_eq(privsep_files_find(rec, "/nonexistent/check_privsep")->error,
	    ENOENT);
	/* Served from memory even after the file changed and went. */
	unlink(tmpl);
	privsep_install(rec);
	ck_assert_ptr_nonnull(fp = privsep_fopen(tmpl));
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), fp));
	ck_assert_str_eq(line, "secret\n");
	ck_assert_ptr_null(fgets(line, sizeof(line), fp));
	fclose(fp);
	ck_assert_int_eq(privsep_read(tmpl, &data, &len), 0);
	ck_assert_uint_eq(len, 7);
	free(data);
	errno = 0;
	ck_assert_ptr_null(privsep_fopen("/nonexistent/check_privsep"));
	ck_assert_int_eq(errno, ENOENT);
	privsep_install(NULL);
	ck_assert_int_eq(privsep_read(tmpl, &data, &len), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

/* The privileged parent against a scripted child process. */

static char notified[64];

static void
record_notify(const char *state)
{
	str_copy_test(notified, state);
}

/*
 * privsep_parent_run expects its caller to have blocked these before the
 * fork (as main.c does): a child that exits before the parent's signalfd
 * exists must still be seen.
 */
static void
block_parent_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
}

static int
run_parent(pid_t child, int fd)
{
	struct privsep_parent pp = { .config_path = "/nonexistent/postern.conf",
	    .pid_file = "", .control = "", .child = child, .fd = fd,
	    .notify = record_notify };

	return privsep_parent_run(&pp);
}

static void
send_frame(int fd, uint32_t type, const char *payload, uint32_t len)
{
	char h[PRIVSEP_HDR_LEN];

	put32(h, type);
	put32(h + 4, len);
	if (write(fd, h, sizeof(h)) != (ssize_t)sizeof(h) ||
	    (len > 0 && write(fd, payload, len) != (ssize_t)len))
		_exit(90);
}

/* The child waits for the parent to close its end, then exits 7. */
static int
wait_eof(int fd)
{
	char c;

	/* EOF, or a reset when the parent left our bytes unread. */
	return read(fd, &c, 1) <= 0 ? 7 : 8;
}

START_TEST(test_parent_relays_known_states_only)
{
	int sp[2];
	pid_t pid;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	if ((pid = fork()) == 0) {
		close(sp[0]);
		send_frame(sp[1], PRIVSEP_MSG_NOTIFY, "MAINPID=1", 9);
		send_frame(sp[1], PRIVSEP_MSG_NOTIFY, "READY=1", 7);
		_exit(3);
	}
	close(sp[1]);
	notified[0] = '\0';
	ck_assert_int_eq(run_parent(pid, sp[0]), 3);
	ck_assert_str_eq(notified, "READY=1");
}
END_TEST

START_TEST(test_parent_drops_an_oversized_child)
{
	char junk[PRIVSEP_CHILD_MSG_MAX + 1];
	int sp[2];
	pid_t pid;

	memset(junk, 'x', sizeof(junk));
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	if ((pid = fork()) == 0) {
		close(sp[0]);
		send_frame(sp[1], PRIVSEP_MSG_NOTIFY, junk, sizeof(junk));
		_exit(wait_eof(sp[1]));
	}
	close(sp[1]);
	notified[0] = '\0';
	ck_assert_int_eq(run_parent(pid, sp[0]), 7);
	ck_assert_str_eq(notified, "");
}
END_TEST

START_TEST(test_parent_drops_a_malformed_child)
{
	int sp[2];
	pid_t pid;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	if ((pid = fork()) == 0) {
		close(sp[0]);
		send_frame(sp[1], 99, "", 0);
		_exit(wait_eof(sp[1]));
	}
	close(sp[1]);
	ck_assert_int_eq(run_parent(pid, sp[0]), 7);
}
END_TEST

/* A reload request: the files come back, unreadable ones as their errno. */
START_TEST(test_parent_answers_a_reload)
{
	int sp[2];
	pid_t pid;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	if ((pid = fork()) == 0) {
		struct privsep_files *f = NULL;
		const struct privsep_file *e;
		struct privsep_frame m;
		static char in[65536];
		const char *error;
		size_t len = 0, used;
		ssize_t n;

		close(sp[0]);
		send_frame(sp[1], PRIVSEP_MSG_RELOAD, "", 0);
		while ((n = read(sp[1], in + len, sizeof(in) - len)) > 0) {
			len += (size_t)n;
			if (privsep_frame_parse(in, len, &m, &used, &error) != 0)
				break;
		}
		if (privsep_frame_parse(in, len, &m, &used, &error) != 1 ||
		    m.type != PRIVSEP_MSG_FILES ||
		    privsep_files_decode(m.payload, m.len, &f, &error) < 0)
			_exit(10);
		e = privsep_files_find(f, "/nonexistent/postern.conf");
		_exit(e != NULL && e->error == ENOENT && f->n == 1 ? 5 : 11);
	}
	close(sp[1]);
	ck_assert_int_eq(run_parent(pid, sp[0]), 5);
}
END_TEST

static Suite *
privsep_suite(void)
{
	Suite *s = suite_create("privsep");
	TCase *tc = tcase_create("privsep");

	tcase_add_test(tc, test_files_round_trip);
	tcase_add_test(tc, test_text_round_trip);
	tcase_add_test(tc, test_byte_at_a_time);
	tcase_add_test(tc, test_frame_rejects);
	tcase_add_test(tc, test_decode_rejects);
	tcase_add_test(tc, test_duplicate_path_refused);
	tcase_add_test(tc, test_bounds);
	tcase_add_test(tc, test_source);
	tcase_add_test(tc, test_parent_relays_known_states_only);
	tcase_add_test(tc, test_parent_drops_an_oversized_child);
	tcase_add_test(tc, test_parent_drops_a_malformed_child);
	tcase_add_test(tc, test_parent_answers_a_reload);
	tcase_add_checked_fixture(tc, block_parent_signals, NULL);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(privsep_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
