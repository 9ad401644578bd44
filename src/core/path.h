/* Filesystem paths. Blocking: start-up, command line and worker threads only. */
#ifndef CS_PATH_H
#define CS_PATH_H

#include <sys/types.h>

/* Creates `path` and any missing parents (like mkdir -p). 0 or -errno. */
int cs_mkdir_p(const char *path, mode_t mode);

#endif
