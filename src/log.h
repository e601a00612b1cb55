/*
 * Logging: one line per event, to stderr (foreground, systemd style) or
 * syslog (detached).  Text lines are terse key=value; "json" wraps each line
 * as a JSON object.  Callers must never pass secrets: there is no filtering.
 * Safe to call from any thread: each line is written with one write(2).
 */
#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

enum log_level {
	LOG_LVL_ERROR,		/* the daemon or a subsystem cannot do its job */
	LOG_LVL_WARNING,	/* a session or request failed for a reason worth reading */
	LOG_LVL_INFO,		/* session summaries, start-up, reload */
	LOG_LVL_DEBUG,		/* state transitions and protocol detail */
};

/* Configure the sink.  Defaults: stderr, text, info. */
void	log_setup(enum log_level level, int json, int use_syslog);
void	log_set_level(enum log_level level);
int	log_enabled(enum log_level level);

/* Parse "error", "warning", "info", "debug"; 0 ok, -1 unknown. */
int	log_level_parse(const char *name, enum log_level *level_r);

void	log_msg(enum log_level level, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	log_vmsg(enum log_level level, const char *fmt, va_list ap)
	    __attribute__((format(printf, 2, 0)));

/*
 * A peer's bytes (len of them, NULs included) as the inside of a quoted log
 * value: printable ASCII as it is, '"' and '\\' after a backslash, every
 * other byte (control characters, DEL, bytes of UTF-8) as \xHH, so nothing
 * a client sends can end the value, forge a field or reach a terminal raw.
 * Cut at a whole escape when out (outlen > 0) is full; returns out.
 */
char	*log_escape(char *out, size_t outlen, const char *s, size_t len);

/*
 * A warning that can repeat (a flood of refused connections, a directory
 * that keeps failing): logged at most once per interval, the next line
 * saying how many were held back.  Zero-initialise; safe from any thread.
 */
struct log_limit {
	_Atomic uint64_t	 next_ms;
	_Atomic unsigned	 held;
};

void	log_limited(struct log_limit *ll, unsigned interval_ms,
	    enum log_level level, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));

/* Start-up failure: log and exit(1).  Never used on the session path. */
void	fatal(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

#define log_error(...)	log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LVL_WARNING, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)	do { if (log_enabled(LOG_LVL_DEBUG)) \
	log_msg(LOG_LVL_DEBUG, __VA_ARGS__); } while (0)

#endif
