/* A private PostgreSQL server for tests: Debian's initdb and pg_ctl on a temp data dir and
 * a free loopback port, run as the `postgres` system user when the tests run as root
 * (PostgreSQL refuses root). Started once per process, stopped at exit (pg_ctl stop -m
 * immediate, the dir removed) even when a test failed; a fresh database per test. Set
 * CS_PG_BIN to use other binaries than /usr/lib/postgresql/15/bin. */
#ifndef CS_TEST_PG_SERVER_H
#define CS_TEST_PG_SERVER_H

#include <libpq-fe.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "free_port.h"

#define PG_SERVER_BIN_DEFAULT "/usr/lib/postgresql/15/bin"

typedef struct pg_server {
    char dir[PATH_MAX]; /* its temp dir: data/, the socket, the log */
    int port;
    unsigned databases; /* made by pg_server_database */
    bool up;
} pg_server;

static inline const char *pg_server_bin(void)
{
    const char *b = getenv("CS_PG_BIN");
    return b && *b ? b : PG_SERVER_BIN_DEFAULT;
}

/* Runs a shell command built from `fmt` as the server's user: 0 when it succeeded. */
static inline int pg_server_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int pg_server_sh(const char *fmt, ...)
{
    char cmd[4 * PATH_MAX], line[5 * PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (geteuid() == 0)
        snprintf(line, sizeof line, "runuser -u postgres -- %s", cmd);
    else
        snprintf(line, sizeof line, "%s", cmd);
    return system(line);
}

/* pg_ctl start (again, after pg_server_stop_now): 0, or -1 with its log on stderr. No
 * fsync (the machine does not crash), but commits stay durable: tests stop the server
 * with -m immediate and count on what was committed. */
static inline int pg_server_start_again(pg_server *s)
{
    if (s->up) return 0;
    if (pg_server_sh("%s/pg_ctl -D %s/data -l %s/log -w -t 120 start -o '-p %d -k %s"
                     " -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
                     " -c max_connections=200' >/dev/null",
                     pg_server_bin(), s->dir, s->dir, s->port, s->dir) != 0) {
        char cat[PATH_MAX + 16];
        snprintf(cat, sizeof cat, "cat %s/log >&2", s->dir);
        if (system(cat) != 0) fprintf(stderr, "pg_server: no log\n");
        return -1;
    }
    s->up = true;
    return 0;
}

/* Stops the server at once (a crash, as far as clients can tell). */
static inline void pg_server_stop_now(pg_server *s)
{
    if (!s->up) return;
    if (pg_server_sh("%s/pg_ctl -D %s/data -m immediate -w stop >/dev/null", pg_server_bin(),
                     s->dir) != 0)
        fprintf(stderr, "pg_server: pg_ctl stop failed\n");
    s->up = false;
}

/* A new server: 0, or -1 with why on stderr. */
static inline int pg_server_start(pg_server *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "/tmp/cs-pg.XXXXXX");
    if (!mkdtemp(s->dir)) {
        perror("pg_server: mkdtemp");
        return -1;
    }
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw || chown(s->dir, pw->pw_uid, pw->pw_gid) != 0) {
            fprintf(stderr, "pg_server: no postgres user to run the server as\n");
            return -1;
        }
    }
    if (pg_server_sh("%s/initdb -D %s/data -A trust -U postgres -E UTF8 --locale=C.UTF-8"
                     " --no-sync >%s/initdb.log 2>&1",
                     pg_server_bin(), s->dir, s->dir) != 0) {
        fprintf(stderr, "pg_server: initdb failed (see %s/initdb.log)\n", s->dir);
        return -1;
    }
    /* a port found free may be taken before the server binds it: try a few */
    for (int i = 0; i < 5; i++) {
        s->port = tu_free_port();
        if (s->port > 0 && pg_server_start_again(s) == 0) return 0;
    }
    return -1;
}

static inline void pg_server_destroy(pg_server *s)
{
    pg_server_stop_now(s);
    if (!s->dir[0]) return;
    char rm[PATH_MAX + 16];
    snprintf(rm, sizeof rm, "rm -rf %s", s->dir);
    if (system(rm) != 0) fprintf(stderr, "pg_server: cannot remove %s\n", s->dir);
    s->dir[0] = '\0';
}

static inline void pg_server_url(const pg_server *s, const char *db, char *out, size_t cap)
{
    snprintf(out, cap, "postgresql://postgres@127.0.0.1:%d/%s", s->port, db);
}

/* Runs `sql` on database `db`: 0, or -1 with the error on stderr. */
static inline int pg_server_exec(const pg_server *s, const char *db, const char *sql)
{
    char url[256];
    pg_server_url(s, db, url, sizeof url);
    PGconn *c = PQconnectdb(url);
    PGresult *r = PQstatus(c) == CONNECTION_OK ? PQexec(c, sql) : NULL;
    int rc = r && (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK)
                 ? 0
                 : -1;
    if (rc < 0) fprintf(stderr, "pg_server: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return rc;
}

/* A fresh database: its URL in `out`. 0, or -1. */
static inline int pg_server_database(pg_server *s, char *out, size_t cap)
{
    char name[64], sql[128];
    snprintf(name, sizeof name, "t%d_%u", (int)getpid(), ++s->databases);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    if (pg_server_exec(s, "postgres", sql) < 0) return -1;
    pg_server_url(s, name, out, cap);
    return 0;
}

#endif
