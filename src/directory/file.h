/*
 * The file map (directory.type = "file"): Perdition's popmap format, read
 * whole into a hash table at (re)load.
 */
#ifndef POSTERN_DIRECTORY_FILE_H
#define POSTERN_DIRECTORY_FILE_H

#include <stddef.h>

struct directory;
struct route;

/* Bytes of a map file; a larger one is refused at (re)load. */
#define FILE_MAP_BYTES_MAX	(256u << 20)

/*
 * File map: "user host[:port][,host2[:port]...] [backend_user]" per line,
 * from a regular file of at most max_bytes (FILE_MAP_BYTES_MAX but in
 * tests).  0 with *dir_r set, or -1 with "PATH:LINE: reason" in err.
 */
int		 dir_file_open(const char *path, size_t max_bytes,
		    struct directory **dir_r, char *err, size_t errlen);
/*
 * Parse one map line.  1 with *user_r and *route_r set, 0 for a blank or
 * comment line, -1 with a reason.
 */
int		 popmap_parse_line(const char *line, char **user_r,
		    struct route **route_r, const char **error_r);

#endif
