/* A second process holding a SQLite database's locks, so that a gateway's connections
 * find the database unwritable, or unreadable, for real (root or not, as chmod is not). */
#ifndef CS_TEST_DBLOCK_H
#define CS_TEST_DBLOCK_H

#include <sys/types.h>

enum {
    /* BEGIN EXCLUSIVE through SQLite's API: writers get SQLITE_BUSY, while WAL readers
     * go on. Forks and calls SQLite in the child: from single-threaded processes only. */
    DB_HOLD_WRITES = 1,
    /* The WAL readers' locks in the -shm file too: every connection's reads (and so
     * writes) stall; SQLite waits such locks out on its own for about 10 s, then fails
     * with "locking protocol". The child makes system calls only. */
    DB_HOLD_READS = 2,
};

/* Takes the locks in `what` on the WAL database at `path` from a child process and
 * returns once they are held: the child's pid, or -1 if they could not be taken within
 * ten seconds. */
pid_t db_hold(const char *path, unsigned what);
/* Lets go (the child exits; a transaction it held rolls back). */
void db_release(pid_t pid);

#endif
