/* The provider's REST half: what call control (call/control.h) asks of the telephony
 * provider — place a call, hang it up, redirect it, fork a one-way stream and stop it —
 * turned into HTTP requests, and the provider's answers back into results. Pure
 * functions: building and reading, no I/O (call/control.c sends them with net/fetch.h). */
#ifndef CS_REST_H
#define CS_REST_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

/* ---- limits ---- */
#define CS_REST_SID_MAX     64   /* longest call or stream id kept from an answer */
#define CS_REST_MESSAGE_MAX 512  /* longest provider error message kept */
#define CS_REST_NAME_MAX    64   /* a stream's name */
#define CS_REST_TWIML_MAX   4000 /* Twilio: a Twiml parameter up to 4,000 characters */

/* What is asked. X(name, label used in events and logs) */
#define CS_REST_OP_MAP(X)                                                                          \
    X(CREATE, "create")             /* place an outbound call */                                   \
    X(HANGUP, "hangup")             /* end a call */                                               \
    X(TWIML, "redirect_twiml")      /* give a live call new instructions */                        \
    X(URL, "redirect_url")          /* … fetched from a URL */                                   \
    X(STREAM_START, "stream_start") /* fork a one-way media stream */                              \
    X(STREAM_STOP, "stream_stop")   /* stop one, by its id or name */

enum cs_rest_op {
#define CS_REST_OP_ENUM(name, label) CS_REST_##name,
    CS_REST_OP_MAP(CS_REST_OP_ENUM)
#undef CS_REST_OP_ENUM
        CS_REST_OP_COUNT
};
const char *cs_rest_op_label(enum cs_rest_op op);

/* One request; strings are the caller's, read while building. */
typedef struct cs_rest_req {
    enum cs_rest_op op;
    const char *call_sid; /* all but CREATE */
    /* CREATE */
    const char *to, *from;
    const char *url;             /* CREATE, URL: where the provider fetches instructions */
    const char *status_callback; /* CREATE: call progress is POSTed there, or NULL */
    unsigned timeout_s;          /* CREATE: ring this long (0: the provider's default) */
    bool machine_detection;      /* CREATE */
    /* TWIML */
    const char *twiml;
    /* STREAM_START: the WebSocket URL, an optional name and track; STREAM_STOP: name
     * (or the stream's id) */
    const char *stream_url, *stream_name, *track;
} cs_rest_req;

/* Who we are to the provider. */
typedef struct cs_rest_creds {
    const char *base_url;    /* e.g. https://api.twilio.com, without a trailing slash */
    const char *account_sid; /* the account the resources belong to */
    const char *user, *pass; /* Basic auth: the account and its token, or an API key pair */
} cs_rest_creds;

/* One HTTP request, built. */
typedef struct cs_rest_http {
    cs_buf url;  /* absolute */
    cs_buf body; /* form-encoded */
    cs_buf auth; /* the "Authorization: Basic …" header line */
} cs_rest_http;

/* How the provider answered. */
typedef struct cs_rest_result {
    int http_status;                       /* 0: no answer */
    char sid[CS_REST_SID_MAX + 1];         /* the call's or stream's id, from a success */
    char status[32];                       /* its status, from a success ("queued", "stopped") */
    long code;                             /* the provider's error code (0: none) */
    char message[CS_REST_MESSAGE_MAX + 1]; /* its message, or what went wrong */
    char more_info[256];                   /* where the provider explains the code */
} cs_rest_result;

typedef struct cs_rest_ops {
    const char *name;
    /* Builds `req` into `h` (its buffers initialised by the caller). 0, -EINVAL with
     * the reason in res->message for a request that cannot be sent, -ENOMEM. */
    int (*build)(const cs_rest_creds *c, const cs_rest_req *req, cs_rest_http *h,
                 cs_rest_result *res);
    /* Reads an answer: 0 for a success (res->sid set when the answer names one), or
     * CS_EBACKEND with the provider's code and message (or what was wrong with the
     * answer) in res. */
    int (*parse)(enum cs_rest_op op, int http_status, const char *body, size_t len,
                 cs_rest_result *res);
} cs_rest_ops;

/* Twilio's REST API (twilio_rest.c). */
extern const cs_rest_ops cs_rest_twilio;

/* By name ("twilio"); NULL if unknown. */
const cs_rest_ops *cs_rest_find(const char *name);

/* Whether `s` is an E.164 number: '+', a first digit 1-9, 15 digits at most. */
bool cs_e164_valid(const char *s);

#endif
