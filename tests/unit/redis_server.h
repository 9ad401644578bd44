/* A private redis-server for tests (Debian's): its own temp directory, a free loopback port,
 * no persistence; killed and its directory removed by rs_stop, which fixtures call from
 * teardown (so even after a failed test), and killed with the test process if it dies
 * (PR_SET_PDEATHSIG). rs_kill and rs_start again restart it on the same port, empty, as a
 * server without persistence would come back. Header-only: unit and integration tests. */
#ifndef CS_TEST_REDIS_SERVER_H
#define CS_TEST_REDIS_SERVER_H

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "free_port.h"

#define RS_START_MS 10000 /* how long a server may take to answer PING */

typedef struct rs_server {
    pid_t pid;
    int port;
    char dir[64];
    char password[64]; /* "" : none */
    char url[128];     /* redis://[:password@]127.0.0.1:port */
} rs_server;

static inline void rs_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A synchronous connection to it (the test's own: checks and injected faults); NULL if it
 * does not answer. Caller frees with redisFree. */
static inline redisContext *rs_connect(const rs_server *s)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
    if (!c || c->err) {
        if (c) redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (s->password[0]) {
        redisReply *r = redisCommand(c, "AUTH %s", s->password);
        bool ok = r && r->type != REDIS_REPLY_ERROR;
        if (r) freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* One command on a fresh connection; the reply (caller frees with freeReplyObject) or NULL. */
static inline redisReply *rs_cmd(const rs_server *s, const char *fmt, ...)
{
    redisContext *c = rs_connect(s);
    if (!c) return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

/* Whether the server answering on its port is the process we started (another one may
 * hold a port picked free a moment before). */
static inline bool rs_is_ours(const rs_server *s)
{
    redisReply *r = rs_cmd(s, "INFO server");
    bool ours = false;
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *p = strstr(r->str, "process_id:");
        ours = p && strtol(p + strlen("process_id:"), NULL, 10) == s->pid;
    }
    if (r) freeReplyObject(r);
    return ours;
}

/* One attempt on s->port: 0, or -1 (it exited: the port was taken, or worse). */
static inline int rs_start_on_port(rs_server *s)
{
    if (s->password[0])
        snprintf(s->url, sizeof s->url, "redis://:%s@127.0.0.1:%d", s->password, s->port);
    else
        snprintf(s->url, sizeof s->url, "redis://127.0.0.1:%d", s->port);
    char port[16], log[128];
    snprintf(port, sizeof port, "%d", s->port);
    snprintf(log, sizeof log, "%s/redis.log", s->dir);
    pid_t parent = getpid();
    s->pid = fork();
    if (s->pid < 0) return -1;
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        const char *argv[] = {"redis-server",
                              "--port",
                              port,
                              "--bind",
                              "127.0.0.1",
                              "--save",
                              "",
                              "--appendonly",
                              "no",
                              "--dir",
                              s->dir,
                              "--logfile",
                              log,
                              "--daemonize",
                              "no",
                              s->password[0] ? "--requirepass" : NULL,
                              s->password,
                              NULL};
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    for (unsigned waited = 0; waited < RS_START_MS; waited += 20) {
        if (rs_is_ours(s)) return 0;
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            fprintf(stderr, "redis-server on port %d exited (see %s)\n", s->port, log);
            s->pid = 0;
            return -1;
        }
        rs_sleep_ms(20);
    }
    fprintf(stderr, "redis-server did not answer on port %d\n", s->port);
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
    return -1;
}

/* Starts it: on a free port the first time (another if that one was taken meanwhile), on
 * the same port and directory again after rs_kill. 0, or -1 with a message on stderr. */
static inline int rs_start(rs_server *s)
{
    if (!s->dir[0]) {
        snprintf(s->dir, sizeof s->dir, "/tmp/cs-redis-XXXXXX");
        if (!mkdtemp(s->dir)) {
            s->dir[0] = '\0';
            return -1;
        }
    }
    if (s->port) return rs_start_on_port(s);
    for (int tries = 0; tries < 5; tries++) {
        s->port = tu_free_port();
        if (s->port > 0 && rs_start_on_port(s) == 0) return 0;
    }
    s->port = 0;
    return -1;
}

static inline int rs_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(path);
}

/* Kills it at once (as a crash would) and waits for it to be gone. */
static inline void rs_kill(rs_server *s)
{
    if (s->pid <= 0) return;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

/* Kills it and removes its directory. Idempotent. */
static inline void rs_stop(rs_server *s)
{
    rs_kill(s);
    if (s->dir[0]) {
        nftw(s->dir, rs_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
        s->dir[0] = '\0';
    }
}

/* The integer a command answers (-1 if it does not). */
static inline long long rs_int(const rs_server *s, const char *fmt, ...)
{
    redisContext *c = rs_connect(s);
    if (!c) return -1;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r) freeReplyObject(r);
    return v;
}

/* How many times the server ran `cmd` (lower case, e.g. "publish") since it started, from
 * INFO commandstats. */
static inline long long rs_calls(const rs_server *s, const char *cmd)
{
    redisReply *r = rs_cmd(s, "INFO commandstats");
    long long n = 0;
    if (r && r->type == REDIS_REPLY_STRING) {
        char needle[64];
        snprintf(needle, sizeof needle, "cmdstat_%s:calls=", cmd);
        const char *p = strstr(r->str, needle);
        if (p) n = strtoll(p + strlen(needle), NULL, 10);
    }
    if (r) freeReplyObject(r);
    return n;
}

#endif
