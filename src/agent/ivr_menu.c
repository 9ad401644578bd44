#include "agent/ivr_menu.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/map.h"
#include "net/fetch.h"
#include "provider/rest.h"

#define POOL_MAX    (16u << 20) /* a parsed menu, at most */
#define POINTER_MAX 512

/* Defaults a menu's "defaults" may change. */
#define TIMEOUT_S       5
#define RETRIES         2
#define DIGIT_TIMEOUT_S 3
#define RECORD_S        60
#define WEBHOOK_S       5
#define NO_INPUT        "Sorry, I did not hear anything."
#define NO_MATCH        "Sorry, I did not understand."
#define ERROR_TEXT      "Sorry, something went wrong."
#define GOODBYE         "Goodbye."

static const char *const kind_labels[] = {"say",     "menu",   "collect", "record",
                                          "webhook", "hangup", "transfer"};

const char *cs_ivr_kind_label(enum cs_ivr_kind k)
{
    return (unsigned)k < sizeof kind_labels / sizeof *kind_labels ? kind_labels[k] : "unknown";
}

/* ---- parsing context: where we are, for messages ---- */

typedef struct ctx {
    cs_ivr_menu *m;
    cs_buf *err;
    char ptr[POINTER_MAX]; /* JSON pointer of the value being read */
    size_t ptr_len;
    cs_map names; /* node name → index + 1 */
    /* the menu's defaults */
    double timeout_s, digit_timeout_s;
    int retries;
    const char *no_input, *no_match, *error;
} ctx;

static int fail(ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(ctx *c, const char *fmt, ...)
{
    cs_buf_printf(c->err, "%s: %s: ", c->m->path, c->ptr_len ? c->ptr : "/");
    va_list ap;
    va_start(ap, fmt);
    cs_buf_vprintf(c->err, fmt, ap);
    va_end(ap);
    return CS_ECONFIG;
}

/* Enters member `key` (or index `i` when key is NULL); returns what to leave back to. */
static size_t enter(ctx *c, const char *key, size_t i)
{
    size_t at = c->ptr_len;
    int n = key ? snprintf(c->ptr + at, sizeof c->ptr - at, "/%s", key)
                : snprintf(c->ptr + at, sizeof c->ptr - at, "/%zu", i);
    if (n > 0) c->ptr_len = at + (size_t)n < sizeof c->ptr ? at + (size_t)n : sizeof c->ptr - 1;
    return at;
}

static void leave(ctx *c, size_t at)
{
    c->ptr_len = at;
    c->ptr[at] = '\0';
}

/* An object whose members are all in `known` (NULL-ended), each once. */
static int check_members(ctx *c, const cJSON *o, const char *const *known)
{
    if (!cJSON_IsObject(o)) return fail(c, "not an object");
    for (const cJSON *it = o->child; it; it = it->next) {
        bool ok = false;
        for (const char *const *k = known; *k && !ok; k++) ok = strcmp(*k, it->string) == 0;
        size_t at = enter(c, it->string, 0);
        if (!ok) {
            int rc = fail(c, "unknown member (expected one of");
            for (const char *const *k = known; *k; k++)
                cs_buf_printf(c->err, "%s %s", k == known ? "" : ",", *k);
            cs_buf_puts(c->err, ")");
            return rc;
        }
        for (const cJSON *prev = o->child; prev != it; prev = prev->next)
            if (strcmp(prev->string, it->string) == 0) return fail(c, "given twice");
        leave(c, at);
    }
    return 0;
}

/* ---- values ---- */

static char *pdup(ctx *c, const char *s)
{
    return cs_pool_strdup(&c->m->pool, s);
}

/* A text to say: a non-empty string of at most CS_IVR_TEXT_MAX bytes, or absent (*out
 * keeps its default). */
static int text(ctx *c, const cJSON *o, const char *key, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return 0;
    size_t at = enter(c, key, 0);
    if (!cJSON_IsString(v)) return fail(c, "not a string");
    size_t n = strlen(v->valuestring);
    if (n == 0) return fail(c, "empty");
    if (n > CS_IVR_TEXT_MAX) return fail(c, "longer than %d bytes", CS_IVR_TEXT_MAX);
    if (!(*out = pdup(c, v->valuestring))) return -ENOMEM;
    leave(c, at);
    return 0;
}

/* A number of seconds in [lo, hi], or absent. */
static int seconds(ctx *c, const cJSON *o, const char *key, double lo, double hi, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return 0;
    size_t at = enter(c, key, 0);
    if (!cJSON_IsNumber(v)) return fail(c, "not a number");
    if (!(v->valuedouble >= lo && v->valuedouble <= hi))
        return fail(c, "%g is not in [%g, %g]", v->valuedouble, lo, hi);
    *out = v->valuedouble;
    leave(c, at);
    return 0;
}

static int integer(ctx *c, const cJSON *o, const char *key, int lo, int hi, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return 0;
    size_t at = enter(c, key, 0);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return fail(c, "not a whole number");
    if (v->valuedouble < lo || v->valuedouble > hi)
        return fail(c, "%g is not in [%d, %d]", v->valuedouble, lo, hi);
    *out = (int)v->valuedouble;
    leave(c, at);
    return 0;
}

static uint32_t ms(double s)
{
    return (uint32_t)(s * 1000 + 0.5);
}

static bool is_key(char k)
{
    return k && strchr("0123456789*#ABCD", k);
}

/* A key: one of 0-9 * # A-D; "" for none when `none_ok`. */
static int key(ctx *c, const cJSON *o, const char *name, bool none_ok, char *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v) return 0;
    size_t at = enter(c, name, 0);
    if (!cJSON_IsString(v)) return fail(c, "not a string");
    const char *s = v->valuestring;
    if (s[0] == '\0' && none_ok) {
        *out = '\0';
    } else if (strlen(s) == 1 && is_key(s[0])) {
        *out = s[0];
    } else {
        return fail(c, "'%s' is not a key (one of 0-9 * # A-D%s)", s, none_ok ? ", or \"\"" : "");
    }
    leave(c, at);
    return 0;
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CS_IVR_NAME_MAX) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("_-.", *s)) return false;
    return true;
}

/* A node named by member `key`: its index in *out (CS_IVR_NONE stays if absent). */
static int node_ref(ctx *c, const cJSON *o, const char *key, uint32_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return 0;
    size_t at = enter(c, key, 0);
    if (!cJSON_IsString(v)) return fail(c, "not a node name");
    void *i = cs_map_get(&c->names, cs_str_of(v->valuestring));
    if (!i) return fail(c, "no node '%s'", v->valuestring);
    *out = (uint32_t)((uintptr_t)i - 1);
    leave(c, at);
    return 0;
}

/* ---- phrases ---- */

/* Lower case, single spaces, trimmed; refuses what a grammar cannot hold. */
static int phrase(ctx *c, const char *in, char *out)
{
    size_t n = 0;
    for (const char *p = in; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == ' ' || ch == '\t') {
            if (n && out[n - 1] != ' ') out[n++] = ' ';
        } else if (isalpha(ch) || ch == '\'') {
            out[n++] = (char)tolower(ch);
        } else if (isdigit(ch)) {
            return fail(c, "'%s': write numbers as words (\"ten\", not \"10\")", in);
        } else {
            return fail(c, "'%s': a phrase holds letters, apostrophes and spaces only", in);
        }
        if (n >= CS_IVR_PHRASE_MAX) return fail(c, "longer than %d bytes", CS_IVR_PHRASE_MAX);
    }
    if (n && out[n - 1] == ' ') n--;
    out[n] = '\0';
    return n ? 0 : fail(c, "empty");
}

int cs_ivr_grammar(cs_buf *out, const char *const *phrases, size_t n)
{
    int rc = cs_buf_puts(out, "#JSGF V1.0;\ngrammar ivr;\npublic <choice> =");
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = cs_buf_printf(out, "%s ( %s )", i ? " |" : "", phrases[i]);
    return rc == 0 ? cs_buf_puts(out, ";\n") : rc;
}

/* ---- nodes ---- */

static const char *const node_members[] = {
    "description", "say",      "choices",  "save",  "collect",  "record",
    "webhook",     "hangup",   "transfer", "next",  "fallback", "timeout_s",
    "retries",     "no_input", "no_match", "error", NULL};

static int choices(ctx *c, const cJSON *arr, cs_ivr_node *n)
{
    size_t at = enter(c, "choices", 0);
    if (!cJSON_IsArray(arr)) return fail(c, "not an array");
    size_t count = (size_t)cJSON_GetArraySize(arr);
    if (count == 0) return fail(c, "empty: a menu needs a choice");
    if (count > CS_IVR_CHOICES_MAX) return fail(c, "more than %d choices", CS_IVR_CHOICES_MAX);
    cs_ivr_choice *ch = cs_pool_alloc(&c->m->pool, count * sizeof *ch);
    if (!ch) return -ENOMEM;
    const char *all[CS_IVR_CHOICES_MAX * CS_IVR_PHRASES_MAX];
    size_t nall = 0;
    size_t i = 0;
    for (const cJSON *o = arr->child; o; o = o->next, i++) {
        static const char *const members[] = {"key", "phrases", "value", "goto", NULL};
        size_t at_i = enter(c, NULL, i);
        int rc = check_members(c, o, members);
        if (rc < 0) return rc;
        cs_ivr_choice *x = &ch[i];
        *x = (cs_ivr_choice){.go = CS_IVR_NONE};
        if ((rc = key(c, o, "key", false, &x->key)) < 0) return rc;
        for (size_t k = 0; k < i && x->key; k++)
            if (ch[k].key == x->key) return fail(c, "key %c is choice %zu's already", x->key, k);
        const cJSON *ph = cJSON_GetObjectItemCaseSensitive(o, "phrases");
        if (ph) {
            size_t at_p = enter(c, "phrases", 0);
            if (!cJSON_IsArray(ph) || cJSON_GetArraySize(ph) == 0)
                return fail(c, "not an array of phrases");
            size_t np = (size_t)cJSON_GetArraySize(ph);
            if (np > CS_IVR_PHRASES_MAX) return fail(c, "more than %d phrases", CS_IVR_PHRASES_MAX);
            const char **p = cs_pool_alloc(&c->m->pool, np * sizeof *p);
            if (!p) return -ENOMEM;
            size_t j = 0;
            for (const cJSON *s = ph->child; s; s = s->next, j++) {
                size_t at_j = enter(c, NULL, j);
                char norm[CS_IVR_PHRASE_MAX + 1];
                if (!cJSON_IsString(s)) return fail(c, "not a string");
                if ((rc = phrase(c, s->valuestring, norm)) < 0) return rc;
                for (size_t k = 0; k < nall; k++)
                    if (strcmp(all[k], norm) == 0) return fail(c, "'%s' is given twice", norm);
                if (!(p[j] = pdup(c, norm))) return -ENOMEM;
                all[nall++] = p[j];
                leave(c, at_j);
            }
            x->phrases = p;
            x->nphrases = np;
            leave(c, at_p);
        }
        if (!x->key && !x->nphrases) return fail(c, "a choice needs a key or phrases");
        const cJSON *goes = cJSON_GetObjectItemCaseSensitive(o, "goto");
        if (!goes) return fail(c, "no goto: where does this choice lead?");
        if ((rc = node_ref(c, o, "goto", &x->go)) < 0) return rc;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "value");
        if (v) {
            size_t at_v = enter(c, "value", 0);
            if (!cJSON_IsString(v) || !v->valuestring[0]) return fail(c, "not a string");
            if (strlen(v->valuestring) > CS_IVR_TEXT_MAX)
                return fail(c, "longer than %d bytes", CS_IVR_TEXT_MAX);
            leave(c, at_v);
        }
        char k[2] = {x->key, '\0'};
        x->value = pdup(c, v ? v->valuestring : x->nphrases ? x->phrases[0] : k);
        if (!x->value) return -ENOMEM;
        leave(c, at_i);
    }
    n->choices = ch;
    n->nchoices = count;
    if (nall) {
        cs_buf g = CS_BUF_INIT(CS_IVR_FILE_MAX);
        int rc = cs_ivr_grammar(&g, all, nall);
        n->grammar = rc == 0 ? pdup(c, g.data) : NULL;
        cs_buf_free(&g);
        if (!n->grammar) return -ENOMEM;
    }
    leave(c, at);
    return 0;
}

static int collect(ctx *c, const cJSON *o, cs_ivr_node *n)
{
    static const char *const members[] = {"max_digits", "min_digits", "finish_on_key",
                                          "digit_timeout_s", NULL};
    size_t at = enter(c, "collect", 0);
    int rc = check_members(c, o, members);
    int max = 0, min = 1;
    double digit_s = c->digit_timeout_s;
    char finish = '#';
    if (rc == 0 && !cJSON_GetObjectItemCaseSensitive(o, "max_digits"))
        rc = fail(c, "no max_digits");
    if (rc == 0) rc = integer(c, o, "max_digits", 1, CS_IVR_DIGITS_MAX, &max);
    if (rc == 0) rc = integer(c, o, "min_digits", 1, CS_IVR_DIGITS_MAX, &min);
    if (rc == 0 && min > max) {
        enter(c, "min_digits", 0);
        rc = fail(c, "%d is more than max_digits (%d)", min, max);
    }
    if (rc == 0) rc = key(c, o, "finish_on_key", true, &finish);
    if (rc == 0) rc = seconds(c, o, "digit_timeout_s", 0.5, CS_IVR_TIMEOUT_MAX_S, &digit_s);
    if (rc < 0) return rc;
    n->collect.max_digits = (uint32_t)max;
    n->collect.min_digits = (uint32_t)min;
    n->collect.finish = finish;
    n->collect.digit_timeout_ms = ms(digit_s);
    leave(c, at);
    return 0;
}

static int record(ctx *c, const cJSON *o, cs_ivr_node *n)
{
    static const char *const members[] = {"max_s", "finish_on_key", "beep", NULL};
    size_t at = enter(c, "record", 0);
    int rc = check_members(c, o, members);
    double max_s = RECORD_S;
    char finish = '#';
    if (rc == 0) rc = seconds(c, o, "max_s", 1, CS_IVR_RECORD_MAX_S, &max_s);
    if (rc == 0) rc = key(c, o, "finish_on_key", true, &finish);
    const cJSON *beep = cJSON_GetObjectItemCaseSensitive(o, "beep");
    if (rc == 0 && beep && !cJSON_IsBool(beep)) {
        enter(c, "beep", 0);
        rc = fail(c, "not true or false");
    }
    if (rc < 0) return rc;
    n->record.max_ms = ms(max_s);
    n->record.finish = finish;
    n->record.beep = !beep || cJSON_IsTrue(beep);
    leave(c, at);
    return 0;
}

static int webhook(ctx *c, const cJSON *o, cs_ivr_node *n)
{
    static const char *const members[] = {"url", "timeout_s", NULL};
    size_t at = enter(c, "webhook", 0);
    int rc = check_members(c, o, members);
    if (rc < 0) return rc;
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(o, "url");
    size_t at_u = enter(c, "url", 0);
    if (!cJSON_IsString(url)) return fail(c, "no URL");
    if (!cs_fetch_url_ok(url->valuestring))
        return fail(c, "'%s' is not an http(s) URL", url->valuestring);
    if (!(n->webhook.url = pdup(c, url->valuestring))) return -ENOMEM;
    leave(c, at_u);
    double s = WEBHOOK_S;
    if ((rc = seconds(c, o, "timeout_s", 0.1, CS_IVR_WEBHOOK_MAX_S, &s)) < 0) return rc;
    n->webhook.timeout_ms = ms(s);
    leave(c, at);
    return 0;
}

static int transfer(ctx *c, const cJSON *o, cs_ivr_node *n)
{
    static const char *const members[] = {"to", NULL};
    size_t at = enter(c, "transfer", 0);
    int rc = check_members(c, o, members);
    if (rc < 0) return rc;
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(o, "to");
    enter(c, "to", 0);
    if (!cJSON_IsString(to) || !cs_e164_valid(to->valuestring))
        return fail(c, "not an E.164 number (+ and up to 15 digits)");
    if (!(n->transfer.to = pdup(c, to->valuestring))) return -ENOMEM;
    leave(c, at);
    return 0;
}

/* What the node does: one of the actions, or none (then it goes on to `next`). */
static int kind(ctx *c, const cJSON *o, cs_ivr_node *n)
{
    static const char *const actions[] = {"choices", "collect", "record",
                                          "webhook", "hangup",  "transfer"};
    static const enum cs_ivr_kind kinds[] = {CS_IVR_MENU,    CS_IVR_COLLECT, CS_IVR_RECORD,
                                             CS_IVR_WEBHOOK, CS_IVR_HANGUP,  CS_IVR_TRANSFER};
    const char *seen = NULL;
    n->kind = CS_IVR_SAY;
    for (size_t i = 0; i < sizeof actions / sizeof *actions; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, actions[i]);
        if (!v) continue;
        if (seen) return fail(c, "both %s and %s: a node does one thing", seen, actions[i]);
        seen = actions[i];
        n->kind = kinds[i];
        if (kinds[i] == CS_IVR_HANGUP && !cJSON_IsTrue(v)) {
            enter(c, "hangup", 0);
            return fail(c, "only true is meaningful here");
        }
    }
    return 0;
}

/* A node's members, once every node name is known. */
static int node(ctx *c, const cJSON *o, cs_ivr_node *n)
{
    int rc = check_members(c, o, node_members);
    if (rc == 0) rc = kind(c, o, n);
    if (rc < 0) return rc;
    double timeout_s = c->timeout_s;
    int retries = c->retries;
    n->no_input = c->no_input;
    n->no_match = c->no_match;
    n->error = c->error;
    n->next = n->fallback = CS_IVR_NONE;
    if ((rc = text(c, o, "say", &n->say)) < 0 || (rc = text(c, o, "no_input", &n->no_input)) < 0 ||
        (rc = text(c, o, "no_match", &n->no_match)) < 0 ||
        (rc = text(c, o, "error", &n->error)) < 0 ||
        (rc = seconds(c, o, "timeout_s", 0.5, CS_IVR_TIMEOUT_MAX_S, &timeout_s)) < 0 ||
        (rc = integer(c, o, "retries", 0, CS_IVR_RETRIES_MAX, &retries)) < 0 ||
        (rc = node_ref(c, o, "next", &n->next)) < 0 ||
        (rc = node_ref(c, o, "fallback", &n->fallback)) < 0)
        return rc;
    n->timeout_ms = ms(timeout_s);
    n->retries = (uint32_t)retries;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "description");
    if (d && !cJSON_IsString(d)) {
        enter(c, "description", 0);
        return fail(c, "not a string");
    }
    const cJSON *save = cJSON_GetObjectItemCaseSensitive(o, "save");
    if (save) {
        size_t at = enter(c, "save", 0);
        if (n->kind != CS_IVR_MENU && n->kind != CS_IVR_COLLECT && n->kind != CS_IVR_RECORD)
            return fail(c, "only choices, collect and record have a result to save");
        if (!cJSON_IsString(save) || !name_ok(save->valuestring))
            return fail(c, "not a name (letters, digits, _ - . up to %d)", CS_IVR_NAME_MAX);
        if (!(n->save = pdup(c, save->valuestring))) return -ENOMEM;
        leave(c, at);
    }

    bool has_next = cJSON_GetObjectItemCaseSensitive(o, "next") != NULL;
    bool waits = n->kind == CS_IVR_MENU || n->kind == CS_IVR_COLLECT || n->kind == CS_IVR_RECORD ||
                 n->kind == CS_IVR_WEBHOOK || n->kind == CS_IVR_TRANSFER;
    bool ends = n->kind == CS_IVR_HANGUP || n->kind == CS_IVR_TRANSFER;
    if ((n->kind == CS_IVR_MENU || ends) && has_next) {
        enter(c, "next", 0);
        return fail(c, n->kind == CS_IVR_MENU     ? "a node with choices goes where they lead"
                       : n->kind == CS_IVR_HANGUP ? "a node that hangs up goes nowhere next"
                                                  : "a node that transfers goes nowhere next "
                                                    "(its fallback, if the transfer fails)");
    }
    if (!has_next && n->kind != CS_IVR_MENU && !ends)
        return fail(c, "no next: a node with %s needs one",
                    n->kind == CS_IVR_SAY ? "nothing else to do (no choices, collect, record, "
                                            "webhook, transfer or hangup)"
                                          : cs_ivr_kind_label(n->kind));
    if (!waits && cJSON_GetObjectItemCaseSensitive(o, "fallback")) {
        enter(c, "fallback", 0);
        return fail(c,
                    "only nodes that wait (choices, collect, record, webhook, transfer) fall back");
    }
    if (!n->say && n->kind != CS_IVR_WEBHOOK && !ends)
        return fail(c, "no say: what does the caller hear?");
    switch (n->kind) {
    case CS_IVR_MENU:
        return choices(c, cJSON_GetObjectItemCaseSensitive(o, "choices"), n);
    case CS_IVR_COLLECT:
        return collect(c, cJSON_GetObjectItemCaseSensitive(o, "collect"), n);
    case CS_IVR_RECORD:
        return record(c, cJSON_GetObjectItemCaseSensitive(o, "record"), n);
    case CS_IVR_WEBHOOK:
        return webhook(c, cJSON_GetObjectItemCaseSensitive(o, "webhook"), n);
    case CS_IVR_TRANSFER:
        return transfer(c, cJSON_GetObjectItemCaseSensitive(o, "transfer"), n);
    default:
        return 0;
    }
}

/* Nodes that only say and go on must not loop among themselves: a call would talk
 * forever without waiting for anything. */
static int no_talking_loop(ctx *c)
{
    const cs_ivr_node *nodes = c->m->nodes;
    size_t n = c->m->nnodes;
    uint8_t *state = calloc(n, 1); /* 0 unseen, 1 on the path, 2 done */
    if (!state) return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t at = i;
        while (nodes[at].kind == CS_IVR_SAY && state[at] == 0) {
            state[at] = 1;
            at = nodes[at].next;
        }
        if (nodes[at].kind == CS_IVR_SAY && state[at] == 1) {
            enter(c, "nodes", 0);
            enter(c, nodes[at].name, 0);
            rc = fail(c, "nodes with only say and next loop through here: the call would never "
                         "wait for the caller");
        }
        for (at = i; nodes[at].kind == CS_IVR_SAY && state[at] == 1; at = nodes[at].next)
            state[at] = 2;
    }
    free(state);
    return rc;
}

static int defaults(ctx *c, const cJSON *d)
{
    static const char *const members[] = {"timeout_s", "retries", "digit_timeout_s", "no_input",
                                          "no_match",  "error",   "goodbye",         NULL};
    c->timeout_s = TIMEOUT_S;
    c->digit_timeout_s = DIGIT_TIMEOUT_S;
    c->retries = RETRIES;
    c->no_input = NO_INPUT;
    c->no_match = NO_MATCH;
    c->error = ERROR_TEXT;
    c->m->goodbye = GOODBYE;
    if (!d) return 0;
    size_t at = enter(c, "defaults", 0);
    int rc = check_members(c, d, members);
    if (rc == 0) rc = seconds(c, d, "timeout_s", 0.5, CS_IVR_TIMEOUT_MAX_S, &c->timeout_s);
    if (rc == 0)
        rc = seconds(c, d, "digit_timeout_s", 0.5, CS_IVR_TIMEOUT_MAX_S, &c->digit_timeout_s);
    if (rc == 0) rc = integer(c, d, "retries", 0, CS_IVR_RETRIES_MAX, &c->retries);
    if (rc == 0) rc = text(c, d, "no_input", &c->no_input);
    if (rc == 0) rc = text(c, d, "no_match", &c->no_match);
    if (rc == 0) rc = text(c, d, "error", &c->error);
    if (rc == 0) rc = text(c, d, "goodbye", &c->m->goodbye);
    if (rc == 0) leave(c, at);
    return rc;
}

static int menu(ctx *c, const cJSON *root)
{
    static const char *const members[] = {"description", "start", "defaults", "nodes", NULL};
    cs_ivr_menu *m = c->m;
    int rc = check_members(c, root, members);
    if (rc == 0) rc = defaults(c, cJSON_GetObjectItemCaseSensitive(root, "defaults"));
    if (rc < 0) return rc;
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(root, "nodes");
    if (!nodes) return fail(c, "no nodes");
    size_t at = enter(c, "nodes", 0);
    if (!cJSON_IsObject(nodes) || !nodes->child) return fail(c, "not an object of nodes");
    size_t n = (size_t)cJSON_GetArraySize(nodes);
    if (n > CS_IVR_NODES_MAX) return fail(c, "more than %d nodes", CS_IVR_NODES_MAX);
    cs_ivr_node *ns = cs_pool_alloc(&m->pool, n * sizeof *ns);
    if (!ns) return -ENOMEM;
    memset(ns, 0, n * sizeof *ns);
    size_t i = 0;
    for (const cJSON *o = nodes->child; o; o = o->next, i++) {
        size_t at_n = enter(c, o->string, 0);
        if (!name_ok(o->string))
            return fail(c, "not a node name (letters, digits, _ - . up to %d)", CS_IVR_NAME_MAX);
        if (cs_map_get(&c->names, cs_str_of(o->string))) return fail(c, "given twice");
        if (!(ns[i].name = pdup(c, o->string))) return -ENOMEM;
        if (cs_map_put(&c->names, cs_str_of(ns[i].name), (void *)(uintptr_t)(i + 1)) < 0)
            return -ENOMEM;
        leave(c, at_n);
    }
    m->nodes = ns;
    m->nnodes = n;
    i = 0;
    for (const cJSON *o = nodes->child; o; o = o->next, i++) {
        size_t at_n = enter(c, o->string, 0);
        if ((rc = node(c, o, &ns[i])) < 0) return rc;
        leave(c, at_n);
    }
    leave(c, at);
    const cJSON *start = cJSON_GetObjectItemCaseSensitive(root, "start");
    m->start = CS_IVR_NONE;
    if (!start) return fail(c, "no start: which node answers the call?");
    if ((rc = node_ref(c, root, "start", &m->start)) < 0) return rc;
    return no_talking_loop(c);
}

/* "line L, column C" of byte `at`. */
static void where(cs_buf *err, const char *json, size_t len, size_t at)
{
    size_t line = 1, col = 1;
    for (size_t i = 0; i < at && i < len; i++) {
        if (json[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    cs_buf_printf(err, "line %zu, column %zu", line, col);
}

int cs_ivr_menu_parse(cs_ivr_menu **out, const char *name, const char *path, const char *json,
                      size_t len, cs_buf *err)
{
    *out = NULL;
    cs_ivr_menu *m = calloc(1, sizeof *m);
    if (!m) return -ENOMEM;
    m->pool.max = POOL_MAX;
    m->name = cs_pool_strdup(&m->pool, name);
    m->path = cs_pool_strdup(&m->pool, path);
    if (!m->name || !m->path) {
        cs_ivr_menu_free(m);
        return -ENOMEM;
    }
    ctx c = {.m = m, .err = err, .names = CS_MAP_INIT};
    c.ptr[0] = '\0';
    int rc;
    const char *end = NULL;
    cJSON *root = len > CS_IVR_FILE_MAX ? NULL : cJSON_ParseWithLengthOpts(json, len, &end, false);
    if (len > CS_IVR_FILE_MAX) {
        cs_buf_printf(err, "%s: larger than %u bytes", path, CS_IVR_FILE_MAX);
        rc = CS_ECONFIG;
    } else if (!root) {
        cs_buf_printf(err, "%s: not JSON (", path);
        where(err, json, len, end ? (size_t)(end - json) : len);
        cs_buf_puts(err, ")");
        rc = CS_ECONFIG;
    } else {
        rc = menu(&c, root);
    }
    cJSON_Delete(root);
    cs_map_free(&c.names);
    if (rc < 0) {
        if (rc == -ENOMEM && err->len == 0) cs_buf_printf(err, "%s: out of memory", path);
        cs_ivr_menu_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int cs_ivr_menu_load(cs_ivr_menu **out, const char *path, cs_buf *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        cs_buf_printf(err, "%s: cannot open: %s", path, strerror(e));
        return CS_ECONFIG;
    }
    char *json = malloc(CS_IVR_FILE_MAX + 1);
    size_t len = json ? fread(json, 1, CS_IVR_FILE_MAX + 1, f) : 0;
    bool bad = json && ferror(f);
    fclose(f);
    if (!json) return -ENOMEM;
    int rc;
    if (bad) {
        cs_buf_printf(err, "%s: cannot read", path);
        rc = CS_ECONFIG;
    } else {
        /* The menu's name: the file's, less its folder and ".json". */
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        size_t n = strlen(base);
        if (n > 5 && strcmp(base + n - 5, ".json") == 0) n -= 5;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)n, base);
        rc = cs_ivr_menu_parse(out, name, path, json, len, err);
    }
    free(json);
    return rc;
}

void cs_ivr_menu_free(cs_ivr_menu *m)
{
    if (!m) return;
    cs_pool_free(&m->pool);
    free(m);
}

const cs_ivr_choice *cs_ivr_menu_key(const cs_ivr_node *n, char key)
{
    for (size_t i = 0; key && i < n->nchoices; i++)
        if (n->choices[i].key == key) return &n->choices[i];
    return NULL;
}

const cs_ivr_choice *cs_ivr_menu_match(const cs_ivr_node *n, const char *text)
{
    /* The words as phrases are kept: lower case, single spaces. */
    char norm[CS_IVR_PHRASE_MAX + 1];
    size_t len = 0;
    for (const char *p = text; *p; p++) {
        if (len >= CS_IVR_PHRASE_MAX) return NULL; /* longer than any phrase */
        if (isspace((unsigned char)*p)) {
            if (len && norm[len - 1] != ' ') norm[len++] = ' ';
        } else {
            norm[len++] = (char)tolower((unsigned char)*p);
        }
    }
    if (len && norm[len - 1] == ' ') len--;
    norm[len] = '\0';
    for (size_t i = 0; len && i < n->nchoices; i++)
        for (size_t j = 0; j < n->choices[i].nphrases; j++)
            if (strcmp(n->choices[i].phrases[j], norm) == 0) return &n->choices[i];
    return NULL;
}
