/* The in-process bus: one loop, one node. Every subscriber is on this loop, so messages
 * never leave it, the directory is this loop's own entries, and the only node is this
 * one. Requests and commands are answered from the loop's next turn, as a remote one
 * would be. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "core/err.h"

/* A command to this node, waiting for the next turn. */
typedef struct command {
    struct command *next;
    size_t n;
    char json[];
} command;

typedef struct inproc {
    uv_timer_t turn; /* answers what waits, on the next turn */
    command *commands, **tail;
    cs_bus *bus; /* NULL once closed: the timer's close frees this */
} inproc;

static void on_turn(uv_timer_t *t)
{
    inproc *p = t->data;
    cs_bus *b = p->bus;
    /* Oldest first; what answering asks (or cancels) meanwhile waits for the next turn
     * (or is gone). */
    uint64_t last = b->asked_seq;
    while (b->asked && b->asked->seq <= last) {
        cs_dir_req *q = b->asked;
        cs_bus__answer_local(b, q, false);
        cs_dir__answer(q);
    }
    command *c = p->commands;
    p->commands = NULL;
    p->tail = &p->commands;
    while (c) {
        command *next = c->next;
        b->stats.commands_in++;
        if (b->cfg.on_command) b->cfg.on_command(b->cfg.data, b->origin, c->json, c->n);
        free(c);
        c = next;
    }
}

static void later(inproc *p)
{
    if (!uv_is_active((uv_handle_t *)&p->turn)) uv_timer_start(&p->turn, on_turn, 0, 0);
}

static int inproc_open(cs_bus *b, cs_buf *err)
{
    (void)err;
    inproc *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    p->bus = b;
    p->tail = &p->commands;
    uv_timer_init(b->cfg.loop, &p->turn);
    p->turn.data = p;
    b->impl = p;
    return 0;
}

static void freed(uv_handle_t *h)
{
    free(h->data);
}

static void inproc_close(cs_bus *b)
{
    inproc *p = b->impl;
    while (p->commands) {
        command *c = p->commands;
        p->commands = c->next;
        free(c);
    }
    p->bus = NULL;
    uv_close((uv_handle_t *)&p->turn, freed);
    b->impl = NULL;
}

static void inproc_ask(cs_bus *b, cs_dir_req *q)
{
    (void)q;
    later(b->impl);
}

static int inproc_command(cs_bus *b, const char *node, uint32_t loop, const char *json,
                          size_t n)
{
    if (strcmp(node, b->node) != 0 || loop != b->cfg.loop_index) return CS_ENOTFOUND;
    inproc *p = b->impl;
    command *c = malloc(sizeof *c + n + 1);
    if (!c) return -ENOMEM;
    c->next = NULL;
    c->n = n;
    memcpy(c->json, json, n);
    c->json[n] = '\0';
    *p->tail = c;
    p->tail = &c->next;
    later(p);
    return 0;
}

const cs_bus_ops cs_bus_inproc_ops = {
    .name = "in-process",
    .open = inproc_open,
    .close = inproc_close,
    .ask = inproc_ask,
    .command = inproc_command,
};
