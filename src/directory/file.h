/*
 * The file map (directory.type = "file"): Perdition's popmap format, read
 * whole into a hash table at (re)load.
 */
#ifndef POSTERN_DIRECTORY_FILE_H
#define POSTERN_DIRECTORY_FILE_H

#include <stddef.h>

struct directory;
struct route;

/* File map: "user host[:port][,host2[:port]...] [backend_user]" per line. */
int		 dir_file_open(const char *path, struct directory **dir_r,
		    char *err, size_t errlen);
/*
 * Parse one map line.  1 with *user_r and *route_r set, 0 for a blank or
 * comment line, -1 with a reason.
 */
int		 popmap_parse_line(const char *line, char **user_r,
		    struct route **route_r, const char **error_r);

#endif
