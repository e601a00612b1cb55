#include "autoconf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "directory.h"
#include "directory/backend.h"
#include "directory/file.h"
#include "util.h"

/*
 * The file map, read once into a hash table.  Lookups are answered at once
 * (through the loop, like any directory) with no locking: the table is
 * immutable after load, and a reload builds a new directory.
 */

struct map_entry {
	char			*user;
	struct route		*route;
	struct map_entry	*next;
};

struct dir_file {
	struct directory	 dir;
	struct map_entry	**slots;
	size_t			 nslots;
	size_t			 nentries;
};

static uint64_t
hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static struct map_entry *
map_find(const struct dir_file *df, const char *user)
{
	struct map_entry *e;

	if (df->nslots == 0)
		return NULL;
	for (e = df->slots[hash_str(user) % df->nslots]; e != NULL; e = e->next)
		if (strcmp(e->user, user) == 0)
			return e;
	return NULL;
}

static void
map_grow(struct dir_file *df)
{
	size_t n = df->nslots ? df->nslots * 2 : 64;
	struct map_entry **slots = xcalloc(n, sizeof(*slots));

	for (size_t i = 0; i < df->nslots; i++) {
		struct map_entry *e = df->slots[i], *next;

		for (; e != NULL; e = next) {
			size_t k = hash_str(e->user) % n;

			next = e->next;
			e->next = slots[k];
			slots[k] = e;
		}
	}
	free(df->slots);
	df->slots = slots;
	df->nslots = n;
}

static void
dir_file_lookup(struct directory *dir, struct dir_request *req)
{
	struct dir_file *df = (struct dir_file *)dir;
	const struct username *name = dir_request_name(req);
	struct map_entry *e = map_find(df, name->full);

	if (e == NULL)
		dir_request_done(req, DIR_NOT_FOUND, NULL, "no entry in the file map");
	else
		dir_request_done(req, DIR_OK, route_ref(e->route), "file map");
}

static void
dir_file_free(struct directory *dir)
{
	struct dir_file *df = (struct dir_file *)dir;

	for (size_t i = 0; i < df->nslots; i++) {
		struct map_entry *e = df->slots[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			free(e->user);
			route_unref(&e->route);
			free(e);
		}
	}
	free(df->slots);
	free(df);
}

static const struct directory_ops dir_file_ops = {
	.name = "file",
	.lookup = dir_file_lookup,
	.free = dir_file_free,
};

int
popmap_parse_line(const char *line, char **user_r, struct route **route_r,
    const char **error_r)
{
	char *copy, *save = NULL, *user, *hosts, *buser, *extra, *h;
	struct route *r;

	while (*line == ' ' || *line == '\t')
		line++;
	if (*line == '\0' || *line == '#' || *line == '\n' || *line == '\r')
		return 0;
	copy = xstrdup(line);
	copy[strcspn(copy, "\r\n")] = '\0';
	/* A comment may follow the fields, after white space. */
	for (char *p = copy + 1; *p != '\0'; p++) {
		if (*p == '#' && (p[-1] == ' ' || p[-1] == '\t')) {
			*p = '\0';
			break;
		}
	}
	user = strtok_r(copy, " \t", &save);
	hosts = strtok_r(NULL, " \t", &save);
	buser = strtok_r(NULL, " \t", &save);
	extra = strtok_r(NULL, " \t", &save);
	if (hosts == NULL || extra != NULL) {
		free(copy);
		*error_r = hosts == NULL ? "expected \"user host[:port] [backend_user]\"" :
		    "too many fields";
		return -1;
	}
	r = route_new();
	if (buser != NULL && route_set_backend_user(r, buser, error_r) < 0) {
		route_unref(&r);
		free(copy);
		return -1;
	}
	for (h = strtok_r(hosts, ",", &save); h != NULL; h = strtok_r(NULL, ",", &save)) {
		if (route_add_host(r, h, error_r) < 0) {
			route_unref(&r);
			free(copy);
			return -1;
		}
	}
	if (r->nhosts == 0) {
		route_unref(&r);
		free(copy);
		*error_r = "no host";
		return -1;
	}
	*user_r = xstrdup(user);
	*route_r = r;
	free(copy);
	return 1;
}

/*
 * Refuse an oversized map before reading any of it.  Only a regular file
 * has a size to check: a device or a FIFO could feed getline() one endless
 * line.
 */
static int
map_check_size(FILE *fp, const char *path, size_t max_bytes, char *err,
    size_t errlen)
{
	struct stat st;

	if (fstat(fileno(fp), &st) < 0)
		snprintf(err, errlen, "%s:0: %s", path, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		snprintf(err, errlen, "%s:0: not a regular file", path);
	else if ((uintmax_t)st.st_size > max_bytes)
		snprintf(err, errlen, "%s:0: %jd bytes: more than the %zu a "
		    "file map may have", path, (intmax_t)st.st_size, max_bytes);
	else
		return 0;
	return -1;
}

int
dir_file_open(const char *path, size_t max_bytes, struct directory **dir_r,
    char *err, size_t errlen)
{
	struct dir_file *df = xcalloc(1, sizeof(*df));
	char *line = NULL;
	size_t linecap = 0, total = 0;
	unsigned lineno = 0;
	ssize_t len;
	FILE *fp;

	df->dir.ops = &dir_file_ops;
	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s:0: %s", path, strerror(errno));
		dir_file_free(&df->dir);
		return -1;
	}
	if (map_check_size(fp, path, max_bytes, err, errlen) < 0)
		goto fail;
	while ((len = getline(&line, &linecap, fp)) >= 0) {
		struct map_entry *e;
		struct route *route;
		const char *error;
		char *user;
		int rc;

		lineno++;
		/* The file may have grown since fstat(). */
		if ((total += (size_t)len) > max_bytes) {
			snprintf(err, errlen, "%s:%u: more than the %zu bytes a "
			    "file map may have (it grew while read)", path,
			    lineno, max_bytes);
			goto fail;
		}
		if ((rc = popmap_parse_line(line, &user, &route, &error)) == 0)
			continue;
		if (rc < 0 || map_find(df, user) != NULL) {
			snprintf(err, errlen, "%s:%u: %s", path, lineno,
			    rc < 0 ? error : "user listed twice");
			if (rc > 0) {
				free(user);
				route_unref(&route);
			}
			goto fail;
		}
		if (df->nentries >= df->nslots)
			map_grow(df);
		e = xmalloc(sizeof(*e));
		e->user = user;
		e->route = route;
		size_t k = hash_str(user) % df->nslots;
		e->next = df->slots[k];
		df->slots[k] = e;
		df->nentries++;
	}
	free(line);
	fclose(fp);
	*dir_r = &df->dir;
	return 0;
fail:
	free(line);
	fclose(fp);
	dir_file_free(&df->dir);
	return -1;
}

/* The map's errors name the map; say which key of which file named it. */
static int
file_backend_open(const struct config *cfg, struct directory **dir_r,
    char *err, size_t errlen)
{
	char why[512];

	if (dir_file_open(cfg->directory.file_path, FILE_MAP_BYTES_MAX, dir_r,
	    why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s: directory.file.path: %s", cfg->path, why);
		return -1;
	}
	return 0;
}

static int
file_backend_check(const struct config *cfg, char *err, size_t errlen)
{
	struct directory *dir;

	if (file_backend_open(cfg, &dir, err, errlen) < 0)
		return -1;
	dir->ops->free(dir);
	return 0;
}

const struct dir_backend dir_backend_file = {
	.name = "file",
	.open = file_backend_open,
	.check = file_backend_check,
	.cacheable = NULL,	/* already in memory: a cache would add a copy */
};
