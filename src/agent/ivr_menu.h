/* IVR menus: a JSON file of nodes (the format is in docs/agents.md), read and checked
 * once at start-up into an immutable tree that every call of the menu shares. A node says
 * a text and does one thing: offers choices (keys, and spoken phrases compiled into a
 * JSGF grammar), collects digits, records a message, calls a webhook, transfers the call,
 * hangs up, or goes on to its next node. A mistake is refused with the file and the JSON
 * pointer of what is wrong. No I/O but reading the file; the agent that runs menus is
 * ivr.c. */
#ifndef CS_IVR_MENU_H
#define CS_IVR_MENU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/pool.h"

/* ---- limits ---- */
#define CS_IVR_FILE_MAX      (1u << 20) /* bytes of a menu file */
#define CS_IVR_NODES_MAX     1024
#define CS_IVR_CHOICES_MAX   32   /* per node */
#define CS_IVR_PHRASES_MAX   32   /* per choice */
#define CS_IVR_PHRASE_MAX    128  /* bytes of a phrase */
#define CS_IVR_TEXT_MAX      4096 /* bytes of a text to say */
#define CS_IVR_NAME_MAX      64   /* node and value names */
#define CS_IVR_DIGITS_MAX    64   /* collect.max_digits */
#define CS_IVR_RECORD_MAX_S  600  /* record.max_s */
#define CS_IVR_TIMEOUT_MAX_S 60   /* timeout_s, digit_timeout_s */
#define CS_IVR_RETRIES_MAX   10
#define CS_IVR_WEBHOOK_MAX_S 30         /* webhook.timeout_s */
#define CS_IVR_NONE          UINT32_MAX /* no node: hang up */

/* What a node does after saying its text. */
enum cs_ivr_kind {
    CS_IVR_SAY = 0,      /* nothing: on to `next` */
    CS_IVR_MENU = 1,     /* waits for a choice: a key or a phrase */
    CS_IVR_COLLECT = 2,  /* collects digits */
    CS_IVR_RECORD = 3,   /* records the caller */
    CS_IVR_WEBHOOK = 4,  /* POSTs what was collected; its answer may say and go on */
    CS_IVR_HANGUP = 5,   /* ends the call once its text has played */
    CS_IVR_TRANSFER = 6, /* transfers the call (<Dial>) once its text has played */
};
const char *cs_ivr_kind_label(enum cs_ivr_kind k);

typedef struct cs_ivr_choice {
    char key;                   /* a DTMF key, or '\0' */
    const char *const *phrases; /* lower case, single spaces */
    size_t nphrases;
    const char *value; /* kept under the node's `save`: given, or the first phrase, or the key */
    uint32_t go;       /* node index */
} cs_ivr_choice;

typedef struct cs_ivr_node {
    const char *name;
    enum cs_ivr_kind kind;
    const char *say;     /* NULL: nothing */
    uint32_t next;       /* SAY, COLLECT, RECORD, WEBHOOK: where it goes on */
    uint32_t fallback;   /* once the retries are spent, or the webhook or transfer failed;
                            CS_IVR_NONE: hang up (after the menu's goodbye) */
    uint32_t timeout_ms; /* waiting for the caller after the prompt */
    uint32_t retries;    /* re-prompts after no input or no match */
    const char *no_input, *no_match, *error; /* said before a re-prompt or the fallback */
    const char *save;                        /* the name its result is kept under, or NULL */
    const cs_ivr_choice *choices;
    size_t nchoices;
    const char *grammar; /* MENU with phrases: JSGF of every phrase; else NULL */
    struct {
        uint32_t max_digits, min_digits, digit_timeout_ms;
        char finish; /* key that ends the input, or '\0' */
    } collect;
    struct {
        uint32_t max_ms;
        char finish;
        bool beep; /* a tone after the prompt */
    } record;
    struct {
        const char *url;
        uint32_t timeout_ms;
    } webhook;
    struct {
        const char *to; /* E.164 */
    } transfer;
} cs_ivr_node;

typedef struct cs_ivr_menu {
    const char *name; /* the file's base name, without .json */
    const char *path;
    const cs_ivr_node *nodes;
    size_t nnodes;
    uint32_t start;
    const char *goodbye; /* said before hanging up for want of a fallback */
    cs_pool pool;        /* everything above */
} cs_ivr_menu;

/* Parses and checks `json` (from `path`, named `name`). 0, -ENOMEM, or CS_ECONFIG with
 * "<path>: <JSON pointer>: <what>" in `err`. Free with cs_ivr_menu_free. */
int cs_ivr_menu_parse(cs_ivr_menu **out, const char *name, const char *path, const char *json,
                      size_t len, cs_buf *err);
/* Reads `path` (at most CS_IVR_FILE_MAX bytes; blocking: start-up only) and parses it,
 * named after the file. */
int cs_ivr_menu_load(cs_ivr_menu **out, const char *path, cs_buf *err);
void cs_ivr_menu_free(cs_ivr_menu *m);

/* The node's choice for key `key`, or for the words `text` (a final transcript, matched
 * whole against its phrases, ignoring case and spacing); NULL: no match. */
const cs_ivr_choice *cs_ivr_menu_key(const cs_ivr_node *n, char key);
const cs_ivr_choice *cs_ivr_menu_match(const cs_ivr_node *n, const char *text);

/* A JSGF grammar whose one public rule is any of `phrases` (checked phrases only). */
int cs_ivr_grammar(cs_buf *out, const char *const *phrases, size_t n);

#endif
