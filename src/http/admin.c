/* `callstream user …` and `callstream token …`: who may use the pages and the API,
 * kept in the same store the gateway uses (DATABASE_URL / DATA_DIR, from the same
 * settings). Safe while the gateway runs: SQLite serializes the writers. A new password
 * or a deleted user ends the user's sessions in the same transaction (the store does it);
 * a running gateway notices within AUTH_CACHE_S. Tokens belong to no user. A change is
 * reported done only once it is committed and read back; the commands keep no spill
 * files (those are the gateway's), so a change the database does not take is not made,
 * and they say so and exit 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/path.h"
#include "http/auth.h"
#include "http/gateway.h"

#define PASSWORD_MIN 8
#define TOKEN_BYTES  24

typedef struct admin {
    uv_loop_t loop;
    cs_mailbox *mb;
    cs_store *store;
    cs_config cfg;
    cs_store_query *answer; /* the query asked, or a stand-in if the database did not answer */
} admin;

static void usage(FILE *f)
{
    fputs("usage: callstream user add NAME --password-stdin [settings]\n"
          "       callstream user list [settings]\n"
          "       callstream user delete NAME [settings]\n"
          "       callstream token create NAME [settings]\n"
          "       callstream token list [settings]\n"
          "       callstream token revoke NAME [settings]\n"
          "\n"
          "Settings (DATA_DIR, DATABASE_URL, …) come from flags, the environment and .env,\n"
          "as for `callstream serve` (`callstream --help`).\n",
          f);
}

/* Opens the store named by the settings in argv[argi..]. */
static int admin_open(admin *a, int argc, char **argv, int argi)
{
    memset(a, 0, sizeof *a);
    cs_buf err = CS_BUF_INIT(4096);
    int help;
    int rc = cs_config_load(&a->cfg, NULL, argc, argv, &argi, &help, &err);
    if (rc == 0 && argi < argc) {
        cs_buf_printf(&err, "unexpected argument '%s'", argv[argi]);
        rc = CS_ECONFIG;
    }
    if (rc == 0 && (rc = cs_mkdir_p(a->cfg.data_dir, 0750)) < 0)
        cs_buf_printf(&err, "cannot create %s: %s", a->cfg.data_dir, cs_strerror(rc));
    if (rc == 0) {
        uv_loop_init(&a->loop);
        rc = cs_mailbox_open(&a->mb, &a->loop);
    }
    if (rc == 0) {
        char url[4200];
        if (a->cfg.database_url[0])
            snprintf(url, sizeof url, "%s", a->cfg.database_url);
        else
            snprintf(url, sizeof url, "sqlite:%s/callstream.db", a->cfg.data_dir);
        cs_log_min = CS_LOG_ERROR; /* what fails is said below, once */
        rc = cs_store_open(&a->store, url, a->mb, 1000, NULL, &err);
    }
    if (rc < 0) fprintf(stderr, "callstream: %s\n", err.data ? err.data : cs_strerror(rc));
    cs_buf_free(&err);
    return rc;
}

static void admin_close(admin *a)
{
    cs_store_close(a->store); /* writes what is queued */
    if (a->mb) {
        cs_mailbox_close(a->mb);
        uv_run(&a->loop, UV_RUN_DEFAULT);
        uv_loop_close(&a->loop);
    }
    cs_config_free(&a->cfg);
}

static void answered(cs_store_query *q, void *data)
{
    ((admin *)data)->answer = q;
}

/* Runs a query to its answer. */
static cs_store_query *ask(admin *a, enum cs_query_kind kind, const char *key)
{
    cs_store_query *q = cs_store_query_new(kind, answered, a);
    if (!q) return NULL;
    snprintf(q->key, sizeof q->key, "%s", key ? key : "");
    a->answer = NULL;
    cs_store_query_run(a->store, q);
    while (!a->answer) uv_run(&a->loop, UV_RUN_ONCE);
    q = a->answer; /* the store keeps the one it could not answer in time */
    if (q->status < 0) {
        fprintf(stderr, "callstream: the store failed: %s\n",
                q->error[0] ? q->error : cs_strerror(q->status));
        cs_store_query_free(q);
        return NULL;
    }
    return q;
}

/* Writes `rec`, then reads `kind`/`key` back behind it while the store closes, which gives
 * a failing database CS_STORE_CLOSE_WAIT_MS. The answer once the write is committed (see
 * done), or NULL after saying on stderr that `undone`. */
static cs_store_query *commit(admin *a, cs_store_rec *rec, enum cs_query_kind kind, const char *key,
                              const char *undone)
{
    cs_store_query *q = cs_store_query_new(kind, answered, a);
    if (!q) {
        cs_store_rec_free(rec);
        fprintf(stderr, "callstream: %s: out of memory\n", undone);
        return NULL;
    }
    snprintf(q->key, sizeof q->key, "%s", key);
    a->answer = NULL;
    cs_store_write(a->store, rec);
    cs_store_query_run_in_order(a->store, q);
    cs_store_close(a->store);
    a->store = NULL;
    while (!a->answer) uv_run(&a->loop, UV_RUN_ONCE);
    q = a->answer;
    if (q->behind) {
        fprintf(stderr, "callstream: %s: the database did not take the change within %d s (%s)\n",
                undone, CS_STORE_CLOSE_WAIT_MS / 1000, q->error);
        cs_store_query_free(q);
        return NULL;
    }
    return q;
}

/* Whether a committed change holds: `there` says so of what was read back. One that could
 * not be read back holds by its commit. */
static bool done(const cs_store_query *q, bool there, const char *undone)
{
    if (!q) return false;
    if (q->status < 0 && q->status != CS_ENOTFOUND) {
        fprintf(stderr, "callstream: committed, but it could not be read back (%s)\n", q->error);
        return true;
    }
    if (!there) fprintf(stderr, "callstream: %s: the database does not hold the change\n", undone);
    return there;
}

static bool name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > CS_USER_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (name[i] <= ' ' || name[i] == 0x7f) return false;
    return true;
}

static int read_password(char *out, size_t cap)
{
    if (!fgets(out, (int)cap, stdin)) return -1;
    out[strcspn(out, "\r\n")] = '\0';
    return strlen(out) >= PASSWORD_MIN ? 0 : -1;
}

static void print_time(const char *what, int64_t ms)
{
    char iso[25];
    cs_iso8601(iso, ms);
    printf("%-24s %s\n", what, iso);
}

int cs_admin_user(int argc, char **argv)
{
    /* argv[0] is "user" */
    const char *verb = argc > 1 ? argv[1] : "";
    bool needs_name = strcmp(verb, "add") == 0 || strcmp(verb, "delete") == 0;
    if (!needs_name && strcmp(verb, "list") != 0) {
        usage(stderr);
        return 2;
    }
    const char *name = needs_name && argc > 2 ? argv[2] : NULL;
    if (needs_name && (!name || !name_ok(name))) {
        fprintf(stderr, "callstream: a user name of 1 to %d visible characters is needed\n",
                CS_USER_MAX);
        return 2;
    }
    int argi = needs_name ? 3 : 2;
    bool from_stdin = false;
    if (argi < argc && strcmp(argv[argi], "--password-stdin") == 0) {
        from_stdin = true;
        argi++;
    }
    if (strcmp(verb, "add") == 0 && !from_stdin) {
        fputs("callstream: user add reads the password from standard input: "
              "add --password-stdin\n",
              stderr);
        return 2;
    }
    admin a;
    if (admin_open(&a, argc, argv, argi) < 0) {
        admin_close(&a);
        return 1;
    }
    int rc = 0;
    if (strcmp(verb, "add") == 0) {
        char password[CS_PASSWORD_MAX + 2], hash[crypto_pwhash_STRBYTES];
        if (sodium_init() < 0 || read_password(password, sizeof password) < 0) {
            fprintf(stderr, "callstream: the password must be at least %d characters\n",
                    PASSWORD_MIN);
            rc = 1;
        } else if (cs_password_hash(hash, password) < 0) {
            fprintf(stderr, "callstream: cannot hash the password (out of memory?)\n");
            rc = 1;
        } else {
            cs_store_query *q = ask(&a, CS_Q_USERS, name);
            bool existed = q && q->nusers == 1;
            cs_store_query_free(q);
            char undone[128];
            snprintf(undone, sizeof undone, "user %s was NOT %s", name,
                     existed ? "given the new password" : "added");
            cs_store_rec *rec = cs_store_rec_new(CS_REC_USER);
            rec->user.name = cs_pool_strdup(&rec->pool, name);
            rec->user.password_hash = cs_pool_strdup(&rec->pool, hash);
            q = commit(&a, rec, CS_Q_USERS, name, undone);
            rc =
                done(q, q && q->nusers == 1 && strcmp(q->users[0].password_hash, hash) == 0, undone)
                    ? 0
                    : 1;
            if (rc == 0 && existed)
                printf("updated the password of user %s and ended its sessions\n", name);
            else if (rc == 0)
                printf("added user %s\n", name);
            cs_store_query_free(q);
        }
        sodium_memzero(password, sizeof password);
    } else if (strcmp(verb, "delete") == 0) {
        cs_store_query *q = ask(&a, CS_Q_USERS, name);
        if (!q || q->nusers == 0) {
            fprintf(stderr, "callstream: no user %s\n", name);
            rc = 1;
        } else {
            cs_store_query_free(q);
            char undone[128];
            snprintf(undone, sizeof undone, "user %s was NOT deleted", name);
            cs_store_rec *rec = cs_store_rec_new(CS_REC_USER_DEL);
            rec->user.name = cs_pool_strdup(&rec->pool, name);
            q = commit(&a, rec, CS_Q_USERS, name, undone);
            rc = done(q, q && q->nusers == 0, undone) ? 0 : 1;
            if (rc == 0) printf("deleted user %s and ended its sessions\n", name);
        }
        cs_store_query_free(q);
    } else {
        cs_store_query *q = ask(&a, CS_Q_USERS, NULL);
        for (size_t i = 0; q && i < q->nusers; i++)
            print_time(q->users[i].name, q->users[i].created_at);
        rc = q ? 0 : 1;
        cs_store_query_free(q);
    }
    admin_close(&a);
    return rc;
}

int cs_admin_token(int argc, char **argv)
{
    const char *verb = argc > 1 ? argv[1] : "";
    bool needs_name = strcmp(verb, "create") == 0 || strcmp(verb, "revoke") == 0;
    if (!needs_name && strcmp(verb, "list") != 0) {
        usage(stderr);
        return 2;
    }
    const char *name = needs_name && argc > 2 ? argv[2] : NULL;
    if (needs_name && (!name || !name_ok(name))) {
        fprintf(stderr, "callstream: a token name of 1 to %d visible characters is needed\n",
                CS_USER_MAX);
        return 2;
    }
    admin a;
    if (admin_open(&a, argc, argv, needs_name ? 3 : 2) < 0) {
        admin_close(&a);
        return 1;
    }
    int rc = 0;
    cs_store_query *q = ask(&a, CS_Q_TOKENS, NULL);
    const cs_token_row *found = NULL;
    for (size_t i = 0; q && name && i < q->ntokens; i++)
        if (strcmp(q->tokens[i].name, name) == 0) found = &q->tokens[i];
    if (!q) {
        rc = 1;
    } else if (strcmp(verb, "create") == 0) {
        if (found) {
            fprintf(stderr, "callstream: there is already a token named %s (revoke it first)\n",
                    name);
            rc = 1;
        } else {
            char token[3 + 2 * TOKEN_BYTES + 1] = "cs_", hash[65], undone[128];
            cs_secret_new(token + 3, TOKEN_BYTES);
            cs_secret_hash(hash, token, strlen(token));
            snprintf(undone, sizeof undone, "token %s was NOT created", name);
            cs_store_rec *rec = cs_store_rec_new(CS_REC_TOKEN);
            rec->token.name = cs_pool_strdup(&rec->pool, name);
            rec->token.token_hash = cs_pool_strdup(&rec->pool, hash);
            cs_store_query *made = commit(&a, rec, CS_Q_TOKENS, hash, undone);
            rc = done(made, made && made->ntokens == 1, undone) ? 0 : 1;
            if (rc == 0) {
                printf("%s\n", token);
                fprintf(stderr,
                        "API token %s created; it is shown only now. Send it as "
                        "\"Authorization: Bearer <token>\".\n",
                        name);
            }
            cs_store_query_free(made);
            sodium_memzero(token, sizeof token);
        }
    } else if (strcmp(verb, "revoke") == 0) {
        if (!found) {
            fprintf(stderr, "callstream: no token named %s\n", name);
            rc = 1;
        } else {
            char undone[128];
            snprintf(undone, sizeof undone, "token %s was NOT revoked", name);
            cs_store_rec *rec = cs_store_rec_new(CS_REC_TOKEN_DEL);
            rec->token.name = cs_pool_strdup(&rec->pool, name);
            cs_store_query *left = commit(&a, rec, CS_Q_TOKENS, found->token_hash, undone);
            rc = done(left, left && left->ntokens == 0, undone) ? 0 : 1;
            if (rc == 0) printf("revoked token %s\n", name);
            cs_store_query_free(left);
        }
    } else {
        for (size_t i = 0; i < q->ntokens; i++)
            print_time(q->tokens[i].name, q->tokens[i].created_at);
    }
    cs_store_query_free(q);
    admin_close(&a);
    return rc;
}
