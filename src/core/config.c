#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

enum kind { K_STR, K_NUM };

typedef struct setting {
    const char *env;
    const char *help;
    enum kind kind;
    size_t offset;
    const char *def_str;
    int64_t def, min, max;
} setting;

static const setting settings[] = {
#define CS_CFG_S(field, env, d, help) {env, help, K_STR, offsetof(cs_config, field), d, 0, 0, 0},
#define CS_CFG_N(field, env, d, lo, hi, help)                                                      \
    {env, help, K_NUM, offsetof(cs_config, field), NULL, d, lo, hi},
    CS_CONFIG_MAP(CS_CFG_S, CS_CFG_N)
#undef CS_CFG_S
#undef CS_CFG_N
};
#define NSETTINGS (sizeof settings / sizeof *settings)

/* "PUBLIC_URL" → "public-url" */
static void flag_name(char *out, size_t cap, const char *env)
{
    size_t i = 0;
    for (; env[i] && i + 1 < cap; i++) out[i] = env[i] == '_' ? '-' : (char)tolower(env[i]);
    out[i] = '\0';
}

static const setting *by_env(const char *env)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (strcmp(settings[i].env, env) == 0) return &settings[i];
    return NULL;
}

static const setting *by_flag(const char *flag, size_t n)
{
    char name[64];
    for (size_t i = 0; i < NSETTINGS; i++) {
        flag_name(name, sizeof name, settings[i].env);
        if (strlen(name) == n && memcmp(name, flag, n) == 0) return &settings[i];
    }
    return NULL;
}

static int set(cs_config *c, const setting *s, const char *value, const char *origin, cs_buf *err)
{
    void *field = (char *)c + s->offset;
    if (s->kind == K_STR) {
        char *copy = strdup(value);
        if (!copy) return -ENOMEM;
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno || end == value || *end || v < s->min || v > s->max) {
        cs_buf_printf(err, "%s (%s): expected an integer from %lld to %lld, got '%s'", s->env,
                      origin, (long long)s->min, (long long)s->max, value);
        return CS_ECONFIG;
    }
    *(int64_t *)field = v;
    return 0;
}

typedef struct env_file_ctx {
    cs_config *c;
    cs_buf *err;
    int rc;
} env_file_ctx;

static void from_env_file(const char *k, const char *v, void *data)
{
    env_file_ctx *x = data;
    const setting *s = by_env(k);
    /* Other variables in .env are for other tools; the environment still wins. */
    if (s && !getenv(k) && x->rc == 0) x->rc = set(x->c, s, v, ".env", x->err);
}

int cs_config_read_env_file(const char *path, void (*fn)(const char *k, const char *v, void *d),
                            void *data)
{
    FILE *f = fopen(path, "r");
    if (!f) return -errno;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        while (isspace((unsigned char)*p)) p++;
        if (*p == '#' || *p == '\0') continue;
        if (strncmp(p, "export ", 7) == 0) p += 7;
        char *eq = strchr(p, '=');
        if (!eq) continue;
        char *kend = eq;
        while (kend > p && isspace((unsigned char)kend[-1])) kend--;
        *kend = '\0';
        char *v = eq + 1;
        while (*v == ' ' || *v == '\t') v++;
        size_t n = strcspn(v, "\r\n");
        v[n] = '\0';
        if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
            v[n - 1] = '\0';
            v++;
        } else {
            /* unquoted: a " #" starts a comment */
            char *hash = strstr(v, " #");
            if (hash) *hash = '\0';
            n = strlen(v);
            while (n && isspace((unsigned char)v[n - 1])) v[--n] = '\0';
        }
        fn(p, v, data);
    }
    fclose(f);
    return 0;
}

int cs_config_load(cs_config *c, const char *env_file, int argc, char **argv, int *argi,
                   int *help, cs_buf *err)
{
    memset(c, 0, sizeof *c);
    *help = 0;
    int rc = 0;
    for (size_t i = 0; i < NSETTINGS && rc == 0; i++) {
        const setting *s = &settings[i];
        if (s->kind == K_STR)
            rc = set(c, s, s->def_str, "default", err);
        else
            *(int64_t *)((char *)c + s->offset) = s->def;
    }
    if (rc) return rc;

    /* Flags may name the .env file, so find that first, stepping over flags and their
     * values as the loop below does. */
    for (int i = *argi; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) continue;
        if (strncmp(a, "--", 2) != 0) break;
        if (strncmp(a, "--env-file=", 11) == 0) {
            env_file = a + 11;
        } else if (!strchr(a, '=')) {
            i++; /* its value */
            if (i < argc && strcmp(a, "--env-file") == 0) env_file = argv[i];
        }
    }
    const char *path = env_file ? env_file : ".env";
    env_file_ctx x = {c, err, 0};
    int frc = cs_config_read_env_file(path, from_env_file, &x);
    if (frc == 0) {
        c->env_file = strdup(path);
    } else if (env_file) {
        cs_buf_printf(err, "cannot read %s: %s", env_file, strerror(-frc));
        return CS_ECONFIG;
    }
    if (x.rc) return x.rc;

    for (size_t i = 0; i < NSETTINGS; i++) {
        const char *v = getenv(settings[i].env);
        if (v && (rc = set(c, &settings[i], v, "environment", err)) < 0) return rc;
    }

    int i = *argi;
    while (i < argc) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *help = 1;
            i++;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) break;
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[i + 1] : NULL);
        bool is_env_file = n == 8 && memcmp(name, "env-file", 8) == 0; /* already read */
        const setting *s = by_flag(name, n);
        if (!s && !is_env_file) {
            cs_buf_printf(err, "unknown option %s (see --help)", a);
            return CS_ECONFIG;
        }
        if (!value) {
            cs_buf_printf(err, "option --%.*s needs a value", (int)n, name);
            return CS_ECONFIG;
        }
        if (s && (rc = set(c, s, value, "flag", err)) < 0) return rc;
        i += eq ? 1 : 2;
    }
    *argi = i;
    return 0;
}

void cs_config_free(cs_config *c)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        if (settings[i].kind != K_STR) continue;
        char **field = (char **)((char *)c + settings[i].offset);
        free(*field);
        *field = NULL;
    }
    free(c->env_file);
    c->env_file = NULL;
}

void cs_config_usage(FILE *out)
{
    fputs("settings (flag, environment variable or .env line; flags win):\n", out);
    char flag[64];
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting *s = &settings[i];
        flag_name(flag, sizeof flag, s->env);
        if (s->kind == K_STR)
            fprintf(out, "  --%-24s %-24s default \"%s\"\n", flag, s->env, s->def_str);
        else
            fprintf(out, "  --%-24s %-24s default %lld\n", flag, s->env, (long long)s->def);
        fprintf(out, "      %s\n", s->help);
    }
    fputs("  --env-file PATH              read settings from PATH instead of ./.env\n", out);
}
