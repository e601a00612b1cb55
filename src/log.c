#include "autoconf.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX	2048

static _Atomic int log_level = LOG_LVL_INFO;
static int log_json;
static int log_syslog;

static const char *const level_names[] = {
	[LOG_LVL_ERROR] = "error",
	[LOG_LVL_WARNING] = "warning",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_DEBUG] = "debug",
};
_Static_assert(sizeof(level_names) / sizeof(level_names[0]) == LOG_LVL_DEBUG + 1,
    "level_names must cover enum log_level");

void
log_setup(enum log_level level, int json, int use_syslog)
{
	log_level = level;
	log_json = json;
	if (use_syslog && !log_syslog)
		openlog("postern", LOG_PID | LOG_NDELAY, LOG_MAIL);
	log_syslog = use_syslog;
}

void
log_set_level(enum log_level level)
{
	log_level = level;
}

int
log_enabled(enum log_level level)
{
	return (int)level <= log_level;
}

int
log_level_parse(const char *name, enum log_level *level_r)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*level_r = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

/* Append s to out as a JSON string body, escaping what JSON requires. */
static size_t
json_escape(char *out, size_t outlen, const char *s)
{
	size_t o = 0;

	for (; *s != '\0' && o + 7 < outlen; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20) {
			o += (size_t)snprintf(out + o, outlen - o, "\\u%04x", c);
		} else
			out[o++] = (char)c;
	}
	out[o] = '\0';
	return o;
}

char *
log_escape(char *out, size_t outlen, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			if (o + 1 >= outlen)
				break;
			out[o++] = (char)c;
		} else if (c == '"' || c == '\\') {
			if (o + 2 >= outlen)
				break;
			out[o++] = '\\';
			out[o++] = (char)c;
		} else {
			if (o + 4 >= outlen)
				break;
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0xf];
		}
	}
	out[o] = '\0';
	return out;
}

void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char msg[LOG_LINE_MAX], line[LOG_LINE_MAX * 2];
	int n, saved_errno = errno;

	if (!log_enabled(level))
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* Never let a peer's bytes forge a second log line. */
	for (char *p = msg; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';

	if (log_syslog) {
		static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
		syslog(prio[level], "%s", msg);
		errno = saved_errno;
		return;
	}

	struct timespec ts;
	struct tm tm;
	char stamp[40];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	if (log_json) {
		char esc[LOG_LINE_MAX * 2 - 128];

		json_escape(esc, sizeof(esc), msg);
		n = snprintf(line, sizeof(line),
		    "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":\"%s\"}\n",
		    stamp, ts.tv_nsec / 1000000, level_names[level], esc);
	} else
		n = snprintf(line, sizeof(line), "%s.%03ldZ postern[%d]: %s: %s\n",
		    stamp, ts.tv_nsec / 1000000, (int)getpid(),
		    level_names[level], msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	/* A failed log write has nowhere to be reported. */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		errno = saved_errno;
	errno = saved_errno;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void
log_limited(struct log_limit *ll, unsigned interval_ms, enum log_level level,
    const char *fmt, ...)
{
	struct timespec ts;
	uint64_t now, next;
	unsigned held;
	char msg[LOG_LINE_MAX];
	va_list ap;

	if (!log_enabled(level))
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	next = atomic_load(&ll->next_ms);
	/* One thread wins the slot; the others count themselves held back. */
	if (now < next || !atomic_compare_exchange_strong(&ll->next_ms, &next,
	    now + interval_ms)) {
		atomic_fetch_add(&ll->held, 1);
		return;
	}
	held = atomic_exchange(&ll->held, 0);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (held > 0)
		log_msg(level, "%s (and %u more like this since the last report)",
		    msg, held);
	else
		log_msg(level, "%s", msg);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}
