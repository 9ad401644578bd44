#include "dblock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HOLD_WAIT_MS 10000
/* SQLite's WAL lock bytes in the -shm file (wal.c: WALINDEX_LOCK_OFFSET 120; then the
 * write, checkpoint and recover locks, and the readers' slots 3..7). */
#define SHM_READ_LOCKS 123
#define SHM_READ_SLOTS 5

static void nap(void)
{
    struct timespec ts = {0, 5 * 1000000L};
    nanosleep(&ts, NULL);
}

/* In the child: each lock taken, retrying while a connection of the gateway holds it. */
static int take(const char *path, const char *shm, unsigned what)
{
    for (int waited = 0; (what & DB_HOLD_READS) && waited < HOLD_WAIT_MS; waited += 5) {
        int fd = open(shm, O_RDWR | O_CLOEXEC);
        struct flock fl = {.l_type = F_WRLCK,
                           .l_whence = SEEK_SET,
                           .l_start = SHM_READ_LOCKS,
                           .l_len = SHM_READ_SLOTS};
        if (fd >= 0 && fcntl(fd, F_SETLK, &fl) == 0) {
            what &= ~(unsigned)DB_HOLD_READS; /* held while fd stays open */
            break;
        }
        if (fd >= 0) close(fd);
        nap();
    }
    if (what & DB_HOLD_READS) return -1;
    if (what & DB_HOLD_WRITES) {
        sqlite3 *db;
        if (sqlite3_open(path, &db) != SQLITE_OK) return -1;
        sqlite3_busy_timeout(db, HOLD_WAIT_MS);
        if (sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL) != SQLITE_OK) return -1;
    }
    return 0;
}

pid_t db_hold(const char *path, unsigned what)
{
    char shm[PATH_MAX];
    snprintf(shm, sizeof shm, "%s-shm", path);
    int ready[2];
    if (pipe(ready) < 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(ready[0]);
        char ok = take(path, shm, what) == 0;
        if (write(ready[1], &ok, 1) != 1) _exit(1);
        for (;;) pause(); /* until db_release */
    }
    close(ready[1]);
    char ok = 0;
    ssize_t n = pid > 0 ? read(ready[0], &ok, 1) : -1;
    close(ready[0]);
    if (n == 1 && ok) return pid;
    if (pid > 0) db_release(pid);
    return -1;
}

void db_release(pid_t pid)
{
    if (pid <= 0) return;
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
}
