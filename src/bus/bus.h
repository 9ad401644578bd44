/* Listen-in pub/sub on one loop: subscribers of a topic (a CallSid, or CS_BUS_ALL for
 * the list of calls) receive what is published to it — JSON messages and audio frames —
 * synchronously, in order. A subscriber decides itself what to drop when it is slow; the
 * publisher never waits. Several nodes will share topics through Redis behind the same
 * interface. */
#ifndef CS_BUS_H
#define CS_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/map.h"

#define CS_BUS_ALL       "*"
#define CS_BUS_TOPIC_MAX 64

enum cs_bus_kind { CS_BUS_TEXT = 1, CS_BUS_AUDIO };

typedef struct cs_bus_msg {
    enum cs_bus_kind kind;
    const char *topic;
    /* CS_BUS_TEXT */
    const char *text; /* a JSON message, ready to send */
    size_t len;
    bool final; /* the topic ends with this message (the call ended) */
    /* CS_BUS_AUDIO */
    unsigned track;  /* 0 caller, 1 agent */
    uint32_t pos_ms; /* place on the call's timeline */
    const uint8_t *ulaw;
    size_t n;
} cs_bus_msg;

typedef struct cs_bus_sub cs_bus_sub;

/* Each subscription is owned by the subscriber (embedded in its state). */
struct cs_bus_sub {
    /* May unsubscribe any subscription; must not publish to the same topic. */
    void (*deliver)(cs_bus_sub *s, const cs_bus_msg *m);
    void *data;
    /* private */
    char topic[CS_BUS_TOPIC_MAX + 1];
    cs_bus_sub *prev, *next;
    bool active;
};

typedef struct cs_bus {
    cs_map topics; /* topic → list head */
    uint64_t published, delivered;
} cs_bus;

void cs_bus_init(cs_bus *b);
/* Every subscription must be gone first. */
void cs_bus_free(cs_bus *b);
/* 0, -EINVAL (topic too long) or -ENOMEM. `s->deliver` must be set. */
int cs_bus_subscribe(cs_bus *b, cs_bus_sub *s, const char *topic);
/* Idempotent; safe from inside `deliver`. */
void cs_bus_unsubscribe(cs_bus *b, cs_bus_sub *s);
/* Whether anyone listens to `topic` (publishers skip the work otherwise). */
bool cs_bus_has(const cs_bus *b, const char *topic, size_t n);
void cs_bus_publish(cs_bus *b, const cs_bus_msg *m);

#endif
