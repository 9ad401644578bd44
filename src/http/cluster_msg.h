/* Commands between the nodes of a cluster (docs/design.md, "Cluster"): one small JSON
 * document each, {"v":1,"op":…}, sent with cs_bus_command to the node that owns a live
 * call and read apart from the bus so they can be tested alone. A node checks what it
 * receives like any input: a malformed command is refused (counted and skipped). */
#ifndef CS_CLUSTER_MSG_H
#define CS_CLUSTER_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "call/call.h"
#include "core/buf.h"
#include "provider/twiml.h"

#define CS_CMD_VERSION    1
#define CS_CMD_TEXT_MAX   4000       /* what an agent says at once (the API's limit) */
#define CS_CMD_DETAIL_MAX (64 << 10) /* an event's detail */
#define CS_CMD_FIELD_MAX  128        /* other strings: a status, a user, a message */
#define CS_CMD_HASH_HEX   64         /* CLAIM: a token's SHA-256 in hex digits */
#define CS_CMD_FORM_MAX   (256 << 10)        /* a forwarded request's form body or query string */
#define CS_CMD_BODY_MAX   CS_TWIML_MAX_BYTES /* a reply's body: a JSON object's text, TwiML */

enum cs_cmd_op {
    CS_CMD_BAD = 0,
    CS_CMD_EVENT,  /* {sid, type, detail?, at}: the call's event, applied where it is live */
    CS_CMD_STATUS, /* {sid, status}: a status callback's CallStatus, for the live call */
    CS_CMD_SAY,    /* {sid, id, text, by}: its agent speaks; the owner replies to `id` */
    CS_CMD_REPLY,  /* {id, code, message?, body?}: how a request went, as it is answered
                      (body: a GATHER's TwiML, a CLAIM's, PEEK's or CANCEL's JSON) */
    /* An API stream waiting for its source (call_streams.c) lives in one loop's memory;
     * these go to every loop (or to its call's, once connected), each replying to `id`. */
    CS_CMD_CLAIM,  /* {sid, id, hash}: its source is here with a token of this hash: the
                      holder hands it over (body: what it needs to start) and forgets it */
    CS_CMD_PEEK,   /* {sid, id}: where it stands (body: the API's answer) */
    CS_CMD_CANCEL, /* {sid, id, by?}: `complete` (body: the API's answer) */
    CS_CMD_GATHER, /* {sid, id, form, query?}: a <Gather> request (a turn, or a stream's
                      <Connect action>) as Twilio sent it, checked already: the owner takes
                      it and replies to `id` */
    CS_CMD_COUNT
};

typedef struct cs_cmd {
    enum cs_cmd_op op;
    const char *sid;
    enum cs_event_type type; /* EVENT */
    const char *detail;      /* EVENT: a JSON object's text, or NULL */
    int64_t at;              /* EVENT: ms since the epoch */
    const char *status;      /* STATUS */
    uint64_t id;             /* SAY, REPLY, CLAIM, PEEK, CANCEL */
    const char *text;        /* SAY */
    const char *by;          /* SAY, CANCEL: the API's user, or NULL */
    int code;                /* REPLY: an HTTP status */
    const char *message;     /* REPLY: why, for codes other than 2xx */
    const char *body;        /* REPLY: the answer's body (a JSON object's text, TwiML), or NULL */
    const char *hash;        /* CLAIM: CS_CMD_HASH_HEX lowercase hex digits */
    const char *form, *query; /* GATHER: the request's body and query string (query: or NULL) */
    void *tree;              /* private: what the strings live in (cs_cmd_free) */
} cs_cmd;

/* Writes `c` (its op's fields) into `out`: 0, or -EINVAL (a field missing or too long),
 * -ENOMEM. */
int cs_cmd_encode(cs_buf *out, const cs_cmd *c);
/* Reads one command: 0, or -EPROTO with the reason in `why` (not JSON, another version,
 * an unknown op, a field missing, mistyped or past its limit). cs_cmd_free follows
 * whatever the answer. */
int cs_cmd_decode(cs_cmd *c, const char *json, size_t n, char *why, size_t cap);
void cs_cmd_free(cs_cmd *c);
/* "event", "status", "say", "reply", "claim", "peek", "cancel", "gather"; NULL for BAD. */
const char *cs_cmd_op_name(enum cs_cmd_op op);

#endif
