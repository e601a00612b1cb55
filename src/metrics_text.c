#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "metrics.h"
#include "util.h"

/*
 * Directory answers take microseconds from memory (cache, file, replica)
 * and milliseconds over the network; timeouts.lookup is seconds.
 */
const double metrics_latency_bounds[METRICS_LATENCY_BUCKETS] = {
	0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
	1, 5,
};

void
metrics_observe_lookup(struct worker_metrics *m, uint64_t us)
{
	size_t i;

	for (i = 0; i < METRICS_LATENCY_BUCKETS; i++)
		if ((double)us <= metrics_latency_bounds[i] * 1e6)
			break;
	m->lookup_buckets[i]++;
	m->lookup_count++;
	m->lookup_us += us;
}

bool
metrics_backend_add(struct metrics_backend *tab, size_t *n, const char *name,
    uint64_t by)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp(tab[i].name, name) == 0) {
			tab[i].n += by;
			return true;
		}
	if (*n >= METRICS_BACKENDS_MAX)
		return false;
	str_copy(tab[*n].name, name, sizeof(tab[*n].name));
	tab[*n].n = by;
	(*n)++;
	return true;
}

void
metrics_connect_failed(struct worker_metrics *m, const char *backend)
{
	if (!metrics_backend_add(m->connect_failures, &m->nconnect_failures,
	    backend, 1))
		m->connect_failures_other++;
}

/* The writer. */

void
metrics_writer_begin(struct metrics_writer *w, struct buf *b)
{
	w->b = b;
	w->failed = false;
}

int
metrics_writer_end(const struct metrics_writer *w)
{
	return w->failed ? -1 : 0;
}

static void
put(struct metrics_writer *w, const char *s, size_t len)
{
	if (!w->failed && buf_append(w->b, s, len) < 0)
		w->failed = true;
}

static void
puts_(struct metrics_writer *w, const char *s)
{
	put(w, s, strlen(s));
}

void
metrics_escape(struct metrics_writer *w, const char *value)
{
	const char *p, *run = value;

	for (p = value; *p != '\0'; p++) {
		const char *esc;

		switch (*p) {
		case '\\':
			esc = "\\\\";
			break;
		case '"':
			esc = "\\\"";
			break;
		case '\n':
			esc = "\\n";
			break;
		default:
			continue;
		}
		put(w, run, (size_t)(p - run));
		puts_(w, esc);
		run = p + 1;
	}
	put(w, run, (size_t)(p - run));
}

/* HELP text escapes only \ and newline. */
static void
help_escape(struct metrics_writer *w, const char *text)
{
	for (const char *p = text; *p != '\0'; p++) {
		if (*p == '\\')
			puts_(w, "\\\\");
		else if (*p == '\n')
			puts_(w, "\\n");
		else
			put(w, p, 1);
	}
}

void
metrics_family(struct metrics_writer *w, const char *name, const char *type,
    const char *help)
{
	puts_(w, "# HELP ");
	puts_(w, name);
	puts_(w, " ");
	help_escape(w, help);
	puts_(w, "\n# TYPE ");
	puts_(w, name);
	puts_(w, " ");
	puts_(w, type);
	puts_(w, "\n");
}

/* name{a="x",b="y"} -- with `extra` as one more pair (histogram's le). */
static void
series(struct metrics_writer *w, const char *name,
    const struct metrics_labels *l, const char *extra, const char *extra_value)
{
	size_t n = l != NULL ? l->n : 0;

	puts_(w, name);
	if (n == 0 && extra == NULL)
		return;
	puts_(w, "{");
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			puts_(w, ",");
		puts_(w, l->names[i]);
		puts_(w, "=\"");
		metrics_escape(w, l->values[i]);
		puts_(w, "\"");
	}
	if (extra != NULL) {
		if (n > 0)
			puts_(w, ",");
		puts_(w, extra);
		puts_(w, "=\"");
		metrics_escape(w, extra_value);
		puts_(w, "\"");
	}
	puts_(w, "}");
}

void
metrics_sample(struct metrics_writer *w, const char *name,
    const struct metrics_labels *l, uint64_t value)
{
	char num[32];

	series(w, name, l, NULL, NULL);
	snprintf(num, sizeof(num), " %llu\n", (unsigned long long)value);
	puts_(w, num);
}

void
metrics_sample_double(struct metrics_writer *w, const char *name,
    const struct metrics_labels *l, double value)
{
	char num[64];

	series(w, name, l, NULL, NULL);
	snprintf(num, sizeof(num), " %.6f\n", value);
	puts_(w, num);
}

void
metrics_histogram(struct metrics_writer *w, const char *name,
    const double *bounds, const uint64_t *counts, size_t nbounds, double sum)
{
	char metric[128], le[32], num[32];
	uint64_t total = 0;

	snprintf(metric, sizeof(metric), "%s_bucket", name);
	for (size_t i = 0; i <= nbounds; i++) {
		total += counts[i];
		if (i < nbounds)
			snprintf(le, sizeof(le), "%g", bounds[i]);
		else
			str_copy(le, "+Inf", sizeof(le));
		series(w, metric, NULL, "le", le);
		snprintf(num, sizeof(num), " %llu\n", (unsigned long long)total);
		puts_(w, num);
	}
	snprintf(metric, sizeof(metric), "%s_sum", name);
	metrics_sample_double(w, metric, NULL, sum);
	snprintf(metric, sizeof(metric), "%s_count", name);
	metrics_sample(w, metric, NULL, total);
}
