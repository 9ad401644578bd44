/* Internals of the simulator shared by its files. */
#ifndef CS_SIM_INT_H
#define CS_SIM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "core/buf.h"
#include "core/json.h"
#include "net/conn.h"
#include "net/fetch.h"
#include "net/wsconn.h"
#include "provider/provider.h"

#define SIM_MAX_PARAMS    CS_PEV_MAX_PARAMS
#define SIM_URL_MAX       2048
#define SIM_FRAME_BYTES   160 /* 20 ms of 8 kHz μ-law, as Twilio sends */
#define SIM_FRAME_MS      20
#define SIM_CLOSE_WAIT_MS 3000 /* after stop, how long to wait for the server */

/* ---- a TwiML document (twiml_read.c) ---- */

#define SIM_NODES_MAX 256 /* elements read from one document */
#define SIM_ATTRS_MAX 512 /* their attributes */
#define SIM_DEPTH_MAX 8   /* elements open at once */

/* An element: its name, attributes and text (the text before its first child, unescaped
 * and trimmed; "" if none). Strings live in the document's storage. */
typedef struct sim_node {
    const char *name;
    const char *text;
    int parent; /* -1: the root */
    unsigned depth;
    size_t attr, nattrs; /* in sim_doc.attrs */
} sim_node;

/* A TwiML document as a flat list of its elements in document order (a node's children
 * follow it, deeper). */
typedef struct sim_doc {
    sim_node nodes[SIM_NODES_MAX];
    size_t n;
    cs_kv attrs[SIM_ATTRS_MAX];
    size_t nattrs;
    char *text; /* owned: every name, value and text, NUL-ended */
    size_t used, cap;
    const char *error; /* why it did not parse (static text) */
} sim_doc;

/* Reads xml[0..n) (and nothing after it) into `d`, whose root must be <Response>.
 * 0; CS_EPARSE (d->error says why: not well-formed, no <Response>, more elements than
 * SIM_NODES_MAX…); -EMSGSIZE for a document over CS_TWIML_MAX_BYTES (Twilio refuses
 * those); -ENOMEM. Frees what `d` held before; sim_doc_free frees it. */
int sim_doc_parse(sim_doc *d, const char *xml, size_t n);
void sim_doc_free(sim_doc *d);
/* Attribute `name` of node `i`, NULL if absent. */
const char *sim_doc_attr(const sim_doc *d, size_t i, const char *name);
/* The next child of node `parent` after node `after` (parent itself: the first), or -1. */
int sim_doc_child(const sim_doc *d, size_t parent, size_t after);

/* ---- following TwiML as Twilio does (flow.c) ---- */

#define SIM_DOCS_MAX         50    /* documents one call fetches: a redirect loop ends here */
#define SIM_ANSWERS_MAX      64    /* --gather-speech / --gather-digits answers */
#define SIM_SAY_CHARS_PER_S  15    /* a <Say> lasts its length at about 150 words a minute */
#define SIM_GATHER_TIMEOUT_S 5     /* Twilio's default <Gather timeout> */
#define SIM_PAUSE_S          1     /* Twilio's default <Pause length> */
#define SIM_WAIT_MAX_S       600   /* any one verb's time, whatever it asks */
#define SIM_CONFIDENCE       "0.9" /* the Confidence sent with a SpeechResult */
#define SIM_REPORT_MAX       (256 * 1024) /* one call's hops, as JSON; more are left out */
#define SIM_EXTRA_MAX        4            /* parameters a verb adds to its request */

typedef struct sim_flow_opts {
    const char *speech[SIM_ANSWERS_MAX]; /* per <Gather> in turn; "" or past the end: none */
    size_t nspeech;
    const char *digits[SIM_ANSWERS_MAX];
    size_t ndigits;
    const char *dial_status; /* DialCallStatus of every <Dial> */
    unsigned max_docs;
} sim_flow_opts;

/* How a call's TwiML ended. */
typedef enum sim_end {
    SIM_END_NONE,
    SIM_END_HANGUP,   /* <Hangup/> */
    SIM_END_REJECT,   /* <Reject/> */
    SIM_END_DOCUMENT, /* the document ran out of verbs: Twilio hangs up */
    SIM_END_CALLER,   /* we ended the stream: the caller hung up */
    SIM_END_LIMIT,    /* SIM_DOCS_MAX documents */
    SIM_END_HTTP,     /* a document could not be fetched */
    SIM_END_TWIML,    /* a document could not be read, or asks what we cannot do */
} sim_end;

/* The stream a <Connect> or <Start> opens; strings in the flow's document. */
typedef struct sim_stream {
    const char *url;
    bool connect; /* <Connect> (two-way) or <Start> (one-way) */
    bool both_tracks;
    cs_kv params[SIM_MAX_PARAMS];
    size_t nparams;
} sim_stream;

typedef enum sim_step_kind { SIM_STEP_FETCH, SIM_STEP_STREAM, SIM_STEP_END } sim_step_kind;

/* What the call does next, once `wait_ms` (the verbs before it: prompts, pauses, a
 * gather's timeout) have passed. */
typedef struct sim_step {
    sim_step_kind kind;
    uint64_t wait_ms;
    /* FETCH: the next document, with Twilio's parameters and these */
    const char *method; /* "GET" or "POST" */
    char url[SIM_URL_MAX];
    cs_kv extra[SIM_EXTRA_MAX];
    size_t nextra;
    sim_stream stream; /* STREAM */
    sim_end end;       /* END */
} sim_step;

/* What calls' TwiML did: field, then its name in the report. */
#define SIM_FLOW_STATS(X)                                                                          \
    X(documents, "documents")                                                                      \
    X(says, "says")                                                                                \
    X(plays, "plays")                                                                              \
    X(pauses, "pauses")                                                                            \
    X(gathers, "gathers")                                                                          \
    X(gathers_no_input, "gathers_no_input")                                                        \
    X(redirects, "redirects")                                                                      \
    X(dials, "dials")                                                                              \
    X(hangups, "hangups")                                                                          \
    X(unknown, "unknown_verbs") /* skipped */                                                      \
    X(limits, "limits")         /* calls stopped at SIM_DOCS_MAX */                                \
    X(errors, "errors")         /* documents not fetched or not read */

typedef struct sim_flow_stats {
#define SIM_STAT_FIELD(field, name) uint64_t field;
    SIM_FLOW_STATS(SIM_STAT_FIELD)
#undef SIM_STAT_FIELD
} sim_flow_stats;

typedef struct sim_flow {
    const sim_flow_opts *o;
    sim_doc doc;
    char url[SIM_URL_MAX]; /* the current document's */
    int verb;              /* the current verb's node; -1: none yet */
    int streaming;         /* the <Connect>/<Start> node streaming, -1 if none */
    sim_end end;
    char error[256];                       /* why it ended with an error */
    char vals[SIM_EXTRA_MAX][SIM_URL_MAX]; /* the values of a step's extra */
    cs_buf report;                         /* the hops, a JSON array */
    size_t kept;                           /* its length after the last whole hop */
    cs_json j;
    sim_flow_stats n;
} sim_flow;

/* Starts a call whose first document comes from `url` (the caller fetches it). */
int sim_flow_init(sim_flow *f, const sim_flow_opts *o, const char *url);
void sim_flow_free(sim_flow *f);
/* The answer to the last fetch of `url` (the first or a FETCH step's): `err` < 0 with
 * `reason` when it failed, else its status and body. sim_flow_next says what follows. */
void sim_flow_answer(sim_flow *f, const char *method, const char *url, int status, int err,
                     const char *reason, const char *body, size_t len);
/* The next step; after an END it stays there. */
void sim_flow_next(sim_flow *f, sim_step *out);
/* The stream of the last STREAM step is over: `by_server` (it closed, or never opened)
 * or not (we ended it: the caller hung up). */
void sim_flow_stream_end(sim_flow *f, bool by_server, const char *why);
/* Whether the current stream's <Connect> has an action (Twilio asks it when the stream ends). */
bool sim_flow_connect_action(const sim_flow *f);
/* The hops so far as a JSON array (closes what is open: call once, at the end). */
const char *sim_flow_report(sim_flow *f, size_t *len);
/* `ref` resolved against `base` as a browser would (absolute, /path, ?query or relative
 * path). 0 or CS_ELIMIT (does not fit `cap`). */
int sim_url_resolve(char *out, size_t cap, const char *base, const char *ref);
/* The JSON name of an end ("twiml_hangup"…). */
const char *sim_end_name(sim_end e);

/* ---- latency samples ---- */

#define SIM_HIST_STEP_US 10     /* resolution */
#define SIM_HIST_BUCKETS 100000 /* up to 1 s; slower goes in the last bucket */

typedef struct sim_hist {
    uint32_t *buckets;
    uint64_t count;
    uint64_t max_us;
} sim_hist;

void sim_hist_add(sim_hist *h, uint64_t us);
/* Microseconds under which `q` of the samples fall (bucket resolution). */
double sim_hist_quantile(const sim_hist *h, double q);
/* qsort order of doubles. */
int sim_cmp_double(const void *a, const void *b);

/* ---- speech in a clip, and the agent's voice (turns.c) ---- */

/* A 20 ms frame is voiced when its energy reaches the clip's threshold: the higher of its
 * noise floor (5th percentile of its frames) + SIM_SPEECH_MARGIN_DB and its loudest frame
 * - SIM_SPEECH_RANGE_DB, never under SIM_VOICE_FLOOR_DB. Voiced frames closer than
 * SIM_SPEECH_GAP_FRAMES join into stretches; stretches shorter than SIM_SPEECH_MIN_FRAMES
 * are clicks. The agent's audio has no floor to learn: its voice is any frame at or above
 * SIM_VOICE_FLOOR_DB (so whatever counts as our speech, echoed, counts as its voice). */
#define SIM_VOICE_FLOOR_DB    (-50.0) /* dBFS */
#define SIM_SPEECH_MARGIN_DB  10.0
#define SIM_SPEECH_RANGE_DB   35.0
#define SIM_SPEECH_GAP_FRAMES 15 /* 300 ms */
#define SIM_SPEECH_MIN_FRAMES 3  /* 60 ms */

/* Where the speech of a clip is, in its 20 ms frames. */
typedef struct sim_speech {
    size_t onset; /* first voiced frame */
    size_t end;   /* one past the last voiced frame */
    bool found;   /* false: silence, onset and end are the clip's last frame and its end */
    double threshold_db;
} sim_speech;

/* Energy of μ-law audio, dBFS (-100 for digital silence). */
double sim_energy_db(const uint8_t *ulaw, size_t n);
/* Finds the speech in `nframes` frames of 20 ms. 0 or -ENOMEM. */
int sim_speech_find(const uint8_t *ulaw, size_t nframes, sim_speech *out);

/* ---- Twilio's playback buffer (turns.c) ---- */

#define SIM_PLAY_SEGS_MAX 256 /* stretches of voice or silence queued; more merge (counted) */

typedef struct sim_seg {
    uint64_t start, end; /* ns */
    bool voiced;
} sim_seg;

/* Agent audio plays in order in real time, from when it arrives or when what came before
 * it has played; a clear drops what has not played. Times are ns on one clock. Every
 * operation first accounts what played up to its `now`. */
typedef struct sim_playback {
    uint64_t end;             /* when what is queued will have played */
    uint64_t voiced_end;      /* when the last of its voice queued will have played (0: none) */
    uint64_t heard;           /* ns of audio played so far */
    uint64_t voiced;          /* of which voice */
    uint64_t played_to;       /* accounted up to here */
    uint64_t heard_voice_end; /* end of the last voice actually played */
    uint64_t merged;          /* stretches merged for want of room */
    sim_seg segs[SIM_PLAY_SEGS_MAX];
    size_t head, n;
} sim_playback;

/* `bytes` of μ-law arrived at `now`: returns when they start playing. */
uint64_t sim_playback_add(sim_playback *p, uint64_t now, size_t bytes, bool voiced);
/* Accounts what played up to `now` (heard, voiced). */
void sim_playback_advance(sim_playback *p, uint64_t now);
/* A clear at `now`: what has not played never will. */
void sim_playback_clear(sim_playback *p, uint64_t now);

/* ---- the caller taking turns (turns.c) ---- */

#define SIM_CLIPS_MAX 64

/* A clip to say, 8 kHz μ-law padded with silence to whole frames. */
typedef struct sim_clip {
    const char *path;
    uint8_t *ulaw;
    size_t frames;
    sim_speech speech;
} sim_clip;

typedef struct sim_turn_opts {
    const sim_clip *clips;
    size_t nclips;
    uint64_t first_after_ns;    /* agent silent from the start: the first clip after this */
    uint64_t gap_ns;            /* the agent stopped talking: no voice for this long */
    uint64_t answer_timeout_ns; /* no answer this long after our speech: go on */
    uint64_t barge_ns;          /* with barge: next clip this long into the agent's answer */
    bool barge;
} sim_turn_opts;

/* One turn, as reported. Times are ns on the clock of the calls to sim_turns_*. A frame
 * sent at t holds the audio of [t - 20 ms, t), as on a phone line: our speech starts 20 ms
 * before its first voiced frame is sent and ends when its last is. */
typedef struct sim_turn {
    bool spoken; /* begun (the call may end first) */
    unsigned clip;
    uint64_t start;      /* the clip's audio */
    uint64_t onset, end; /* its speech */
    bool began;          /* its first voiced frame went out */
    bool ended;          /* its last voiced frame went out */
    bool barge;          /* started into the agent's answer (--barge-in-ms) */
    bool answered;       /* agent voice arrived after our speech ended (and played) */
    uint64_t answer;     /* when the first of it played */
    bool cleared;        /* a clear came during the turn */
    uint64_t clear;      /* the first one */
    uint64_t heard;      /* agent audio played during the turn (ns) */
    uint64_t overlap;    /* agent voice played while we spoke (ns) */
    uint64_t heard_at_start, voiced_at_onset; /* playback totals then */
} sim_turn;

typedef struct sim_turns {
    const sim_turn_opts *o;
    sim_playback *play;
    sim_turn *turns; /* o->nclips records, the caller's */
    size_t started;  /* turns begun */
    size_t pos;      /* next frame of the current clip */
    bool speaking;   /* the current clip has frames left */
    bool done;       /* the last turn was answered and its answer played (or given up) */
    bool spoke;      /* the agent's voice was heard before our first turn */
    uint64_t spoke_at;
    uint64_t t0;
} sim_turns;

/* `play` and `turns` must outlive `t`. */
void sim_turns_init(sim_turns *t, const sim_turn_opts *o, sim_playback *play, sim_turn *turns,
                    uint64_t t0);
/* The frame to send in the slot at `now`, into `frame`: the current clip's, or silence.
 * false once the conversation is over (nothing written). */
bool sim_turns_frame(sim_turns *t, uint64_t now, uint8_t frame[SIM_FRAME_BYTES]);
/* Agent audio arrived at `now`: when it starts playing. */
uint64_t sim_turns_media(sim_turns *t, uint64_t now, const uint8_t *ulaw, size_t n);
/* A clear arrived at `now`. */
void sim_turns_clear(sim_turns *t, uint64_t now);
/* The call ends at `now`, over or not: closes the turn in progress. */
void sim_turns_finish(sim_turns *t, uint64_t now);

/* ---- a stored call to replay (replay_export.c) ---- */

#define SIM_EXPORT_FORMAT    "callstream-call-export" /* GET /api/v1/calls/{sid}/export */
#define SIM_EXPORT_VERSION   1
#define SIM_EXPORT_MAX_BYTES (128u << 20)         /* an export read or fetched */
#define SIM_REPLAY_MAX_MS    (3ull * 3600 * 1000) /* the longest call replayed */
#define SIM_REPLAY_KEYS_MAX  4096                 /* DTMF events */
#define SIM_REPLAY_SEGS_MAX  20000                /* caller transcript segments */
#define SIM_REPLAY_FIELD_MAX 64                   /* a SID or number */

typedef struct sim_key {
    uint64_t at_ms; /* on the call's timeline (its start is the recording's frame 0) */
    char digit;
} sim_key;

typedef struct sim_segment {
    uint64_t start_ms;
    char *text;
} sim_segment;

/* What replay takes from an export: the caller's audio, keys and words. */
typedef struct sim_export {
    char call_sid[SIM_REPLAY_FIELD_MAX + 1];
    char from[SIM_REPLAY_FIELD_MAX + 1], to[SIM_REPLAY_FIELD_MAX + 1];
    uint8_t *ulaw; /* the recording's caller channel, 8 kHz μ-law; NULL if not embedded */
    size_t nulaw;
    uint64_t audio_at_ms; /* where it starts on the call's timeline */
    char audio_url[256];  /* the recording on the exporting gateway ("" if none) */
    sim_key *keys;        /* in time order */
    size_t nkeys;
    size_t nmarks;         /* mark echoes the original's caller sent */
    bool events_truncated; /* the exporter left later events out: later keys are missing */
    sim_segment *segs;     /* the caller's final transcript, in time order */
    size_t nsegs;
} sim_export;

/* Reads an export. 0, or CS_EPARSE (not one, a version this build does not read, a
 * value out of its range) or CS_ELIMIT (past a SIM_REPLAY_* bound) with why in `err`. */
int sim_export_parse(const char *json, size_t n, sim_export *out, char *err, size_t cap);
void sim_export_free(sim_export *e);
/* The caller's words said from `from_ms` to `to_ms` (0: the end), joined by spaces. */
int sim_export_words(const sim_export *e, uint64_t from_ms, uint64_t to_ms, cs_buf *out);

/* What a replayed call sends: 20 ms frames of the caller's audio from `from_ms`, and each
 * key after the frame its time falls in. */
typedef struct sim_replay {
    const sim_export *e;
    uint64_t from_ms, end_ms;
    uint64_t frames;
} sim_replay;

/* The part of `e` from `from_ms` to `to_ms` (0: its end: the audio's or the last key's).
 * 0, or CS_EPARSE when that part is empty. */
int sim_replay_cut(sim_replay *r, const sim_export *e, uint64_t from_ms, uint64_t to_ms);
/* Frame `k` (silence where the recording has none). */
void sim_replay_frame(const sim_replay *r, uint64_t k, uint8_t frame[SIM_FRAME_BYTES]);
/* The next key due once frame `k` is sent, from key `*next` on (advanced past it), or 0. */
char sim_replay_key(const sim_replay *r, size_t *next, uint64_t k);

/* ---- the run ---- */

typedef struct sim_opts {
    const char *url; /* the gateway's base URL: http(s)://host:port */
    const char *wav; /* NULL: a synthetic test signal */
    unsigned calls;
    double ramp_s;          /* calls start evenly over this long */
    double duration_s;      /* per call; 0: the WAV's length */
    const char *dtmf;       /* digits sent evenly through each call */
    const char *auth_token; /* signs the webhook and the upgrade */
    const char *account_sid;
    const char *from, *to;
    const char *out;        /* what the server sent back: a .wav (one call) or a folder */
    bool out_stereo;        /* --out: what we said left, what we heard right */
    const char *say;        /* clips to say as turns, comma-separated */
    const char *ca_file;    /* wss/https: trust this CA */
    bool insecure;          /* wss/https: do not verify */
    double setup_timeout_s; /* webhook + upgrade must finish within this */
} sim_opts;

typedef struct sim_counts {
    uint64_t completed, failed;
    uint64_t fail_webhook, fail_twiml, fail_connect, fail_upgrade, fail_closed, fail_timeout;
    uint64_t fail_fetch, fail_limit; /* a later document not fetched; SIM_DOCS_MAX reached */
    uint64_t frames_sent;            /* inbound media messages */
    uint64_t media_rx;               /* media messages from the server */
    uint64_t bytes_rx;
    uint64_t marks_rx, marks_echoed, clears_rx, dtmf_sent;
    uint64_t bad_rx;      /* server messages we could not parse */
    uint64_t play_merged; /* playback stretches merged (sim_playback.merged) */
    sim_flow_stats twiml; /* every call's TwiML */
} sim_counts;

typedef struct sim_call sim_call;

typedef struct sim {
    sim_opts o;
    uv_loop_t *loop;
    cs_net *net;
    cs_fetch *fetch; /* the webhooks */
    uint8_t *ulaw;   /* the audio to send, 8 kHz μ-law */
    size_t nulaw;
    uint64_t frames;               /* per call (with --say: at most) */
    sim_clip clips[SIM_CLIPS_MAX]; /* --say */
    size_t nclips;
    sim_turn_opts turn;
    sim_turn *turns;    /* nclips per call */
    sim_flow_opts flow; /* --gather-speech, --gather-digits, --dial-status */
    char *hops;         /* one call: its TwiML's hops (JSON) */
    sim_end end;        /* one call: how its TwiML ended */
    const sim_replay *replay; /* the frames and keys of a stored call (callstream replay) */
    sim_call *calls;
    unsigned started, finished;
    uint64_t t0_ns;
    uv_timer_t ramp;
    cs_buf msg; /* scratch for outgoing messages */
    uint8_t rx[CS_PEV_MAX_PAYLOAD];
    sim_hist rtt, lag;
    sim_counts n;
} sim;

/* Starts call `i`; its end is reported through sim_call_finished. */
void sim_call_start(sim *s, unsigned i);
/* Size of one call's state. */
size_t sim_call_size(void);
sim_call *sim_call_at(sim *s, unsigned i);
/* When its stream started (its turns' times count from there), 0 if it did not. */
uint64_t sim_call_t0(const sim_call *c);
/* Its CallSid. */
const char *sim_call_sid(const sim_call *c);
/* Called by a call once it is over (it has released its handles or will). */
void sim_call_finished(sim *s);

/* Runs s->o.calls calls to their end (sim.c); *wall_s gets how long. 0, or a negative
 * code after a line on stderr (nothing ran). */
int sim_run(sim *s, double *wall_s);
/* The JSON report's fields, into an open object. */
void sim_report(const sim *s, cs_json *j, double wall_s);
/* Frees what sim_run allocated. */
void sim_release(sim *s);

#endif
