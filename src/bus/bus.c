#include "bus/bus.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The subscribers of one topic. The key points at `topic`. */
typedef struct topic {
    char topic[CS_BUS_TOPIC_MAX + 1];
    cs_bus_sub *head;
    cs_bus_sub *cursor; /* the next one publish will visit: unsubscribe moves it on */
    bool walking;       /* publish is visiting: the topic stays until it is done */
} topic;

void cs_bus_init(cs_bus *b)
{
    memset(b, 0, sizeof *b);
}

void cs_bus_free(cs_bus *b)
{
    void *v;
    for (size_t pos = 0; cs_map_next(&b->topics, &pos, NULL, &v);) free(v);
    cs_map_free(&b->topics);
}

int cs_bus_subscribe(cs_bus *b, cs_bus_sub *s, const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > CS_BUS_TOPIC_MAX) return -EINVAL;
    if (s->active) cs_bus_unsubscribe(b, s);
    topic *t = cs_map_get(&b->topics, (cs_str){name, n});
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t) return -ENOMEM;
        memcpy(t->topic, name, n + 1);
        if (cs_map_put(&b->topics, (cs_str){t->topic, n}, t) < 0) {
            free(t);
            return -ENOMEM;
        }
    }
    memcpy(s->topic, name, n + 1);
    s->prev = NULL;
    s->next = t->head;
    if (t->head) t->head->prev = s;
    t->head = s;
    s->active = true;
    return 0;
}

void cs_bus_unsubscribe(cs_bus *b, cs_bus_sub *s)
{
    if (!s->active) return;
    s->active = false;
    topic *t = cs_map_get(&b->topics, cs_str_of(s->topic));
    if (!t) return;
    if (t->cursor == s) t->cursor = s->next;
    if (s->prev)
        s->prev->next = s->next;
    else
        t->head = s->next;
    if (s->next) s->next->prev = s->prev;
    s->prev = s->next = NULL;
    if (!t->head && !t->walking) {
        cs_map_del(&b->topics, cs_str_of(t->topic));
        free(t);
    }
}

bool cs_bus_has(const cs_bus *b, const char *name, size_t n)
{
    return b->topics.len && cs_map_get(&b->topics, (cs_str){name, n}) != NULL;
}

void cs_bus_publish(cs_bus *b, const cs_bus_msg *m)
{
    topic *t = cs_map_get(&b->topics, cs_str_of(m->topic));
    if (!t) return;
    b->published++;
    /* A subscriber may unsubscribe itself or others while we walk: the cursor keeps our
     * place, and the topic stays until the walk ends. */
    t->walking = true;
    t->cursor = t->head;
    while (t->cursor) {
        cs_bus_sub *s = t->cursor;
        t->cursor = s->next;
        b->delivered++;
        s->deliver(s, m);
    }
    t->walking = false;
    if (!t->head) {
        cs_map_del(&b->topics, cs_str_of(t->topic));
        free(t);
    }
}
