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

/* ---- the TwiML the webhook answered ---- */

/* What a document without a <Stream> has the call do: the first <Hangup>, <Redirect>
 * or <Dial> (a <Gather> before it that hears nothing falls through to it, as on Twilio). */
typedef enum sim_then { SIM_THEN_NONE, SIM_THEN_HANGUP, SIM_THEN_REDIRECT, SIM_THEN_DIAL } sim_then;

typedef struct sim_twiml {
    char stream_url[SIM_URL_MAX]; /* "" without a <Stream> */
    bool connect;                 /* <Connect> (two-way) or <Start> (one-way) */
    bool both_tracks;             /* <Start> with track="both_tracks" */
    cs_kv params[SIM_MAX_PARAMS];
    size_t nparams;
    char storage[16384];             /* the parameters' text */
    bool gather;                     /* a <Gather> before the stream or `then` */
    char gather_action[SIM_URL_MAX]; /* its action ("" if none) */
    sim_then then;
    char then_text[SIM_URL_MAX]; /* the <Redirect>'s URL or the <Dial>'s number */
} sim_twiml;

/* Reads the first <Stream> of a TwiML document, or what a document without one has the
 * call do (a <Gather>, then <Hangup>, <Redirect> or <Dial>). 0 or CS_EPARSE (neither, or
 * a value too long). */
int sim_twiml_parse(const char *xml, size_t n, sim_twiml *out);
/* Says what a document without a <Stream> has the call do, one line each. */
void sim_twiml_report(const sim_twiml *t, const char *call_sid, FILE *out);

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
    uint64_t frames_sent; /* inbound media messages */
    uint64_t media_rx;    /* media messages from the server */
    uint64_t bytes_rx;
    uint64_t marks_rx, marks_echoed, clears_rx, dtmf_sent;
    uint64_t bad_rx;      /* server messages we could not parse */
    uint64_t play_merged; /* playback stretches merged (sim_playback.merged) */
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
    sim_turn *turns;          /* nclips per call */
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
