/* The messages a browser sends on the /monitor socket (docs/monitor.md, "Client →
 * server"), read apart from the socket so they can be tested alone: one JSON object per
 * text frame, its "type" looked up in a table, the fields that type uses picked out. */
#ifndef CS_MONITOR_MSG_H
#define CS_MONITOR_MSG_H

#include <stdbool.h>
#include <stddef.h>

enum cs_monitor_type {
    CS_MONITOR_BAD = 0,     /* not one JSON object with a string "type", or a binary frame */
    CS_MONITOR_UNKNOWN,     /* a "type" we do not know */
    CS_MONITOR_WATCH_CALLS, /* {"type":"watch_calls"} */
    CS_MONITOR_SUBSCRIBE,   /* {"type":"subscribe","call":"CA…","audio":"both"} */
    CS_MONITOR_AUDIO,       /* {"type":"audio","call":"CA…","audio":"caller"} */
    CS_MONITOR_UNSUBSCRIBE, /* {"type":"unsubscribe","call":"CA…"} */
    CS_MONITOR_PING,        /* {"type":"ping","t":1732262400123} */
};

/* Which audio a subscriber takes, as bits: "both" (also when absent), "caller", "agent";
 * "none" and unknown names take none. */
#define CS_MONITOR_AUDIO_CALLER 1u
#define CS_MONITOR_AUDIO_AGENT  2u

typedef struct cs_monitor_msg {
    enum cs_monitor_type type;
    const char *call; /* "call" when it is a string, else NULL; lives in `tree` */
    unsigned audio;   /* "audio" as CS_MONITOR_AUDIO_* bits */
    bool has_t;       /* "t" is a number */
    double t;
    void *tree; /* the parse tree, freed by cs_monitor_msg_free */
} cs_monitor_msg;

/* Reads one frame: data[0..len) of a text frame, or a binary one (`text` false), which is
 * always BAD. Whatever the answer, cs_monitor_msg_free must follow. */
void cs_monitor_msg_parse(cs_monitor_msg *m, bool text, const char *data, size_t len);
void cs_monitor_msg_free(cs_monitor_msg *m);
/* The wire names, for writing messages (tests): "watch_calls", …, NULL for BAD and
 * UNKNOWN; "none", "caller", "agent", "both" for audio bits. */
const char *cs_monitor_type_name(enum cs_monitor_type type);
const char *cs_monitor_audio_name(unsigned audio);

#endif
