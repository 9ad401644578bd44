/* Calls and their media streams, from `start` to the end: the registry by StreamSid and
 * CallSid, per-stream statistics, the timeline audio is placed on, the bookkeeping of
 * marks and clears, recordings, and events. What a call produces leaves through
 * observers (store, listen-in, transcription), which the call never knows by name.
 * Everything here runs on the loop thread that owns the call. */
#ifndef CS_CALL_H
#define CS_CALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audio/recorder.h"
#include "audio/vad.h"
#include "call/playout.h"
#include "core/log.h"
#include "core/map.h"
#include "core/pool.h"
#include "core/prom.h"
#include "core/str.h"
#include "provider/provider.h"

/* ---- limits ---- */
#define CS_CALL_MAX_STREAMS 4    /* Twilio: up to 4 one-way tracks per call */
#define CS_SID_MAX          64   /* longest stream or call id we keep */
#define CS_MARK_NAME_MAX    64   /* longer mark names are refused */
#define CS_MARKS_MAX        1024 /* marks awaiting their echo; more are refused */
#define CS_CALL_MAX_OBSERVERS 8
#define CS_FRAMES_PER_MS    8    /* 8 kHz */
#define CS_TS_TOLERANCE_MS  10000 /* default of TIMESTAMP_TOLERANCE_S, in ms */

enum cs_stream_mode {
    CS_MODE_ONE_WAY = 0, /* <Start><Stream>: we may not send anything */
    CS_MODE_TWO_WAY = 1, /* <Connect><Stream>: media, mark and clear go back */
    CS_MODE_RELAY = 2,   /* text both ways: the provider recognises the caller's speech and
                            says the agent's text; no audio reaches us */
    CS_MODE_GATHER = 3,  /* text both ways, turn by turn over HTTP (call/gather.h): no socket */
};

/* Who spoke, on the call's timeline. */
enum cs_speaker { CS_SPEAKER_CALLER = 0, CS_SPEAKER_AGENT = 1 };

/* Why a stream ended. X(name, label) */
#define CS_END_MAP(X)                                                                              \
    X(STOP, "stop")                 /* the provider sent stop */                                   \
    X(ABNORMAL, "abnormal")         /* the socket closed without stop */                           \
    X(IDLE, "idle_timeout")         /* nothing arrived for IDLE_TIMEOUT_S */                       \
    X(MAX_DURATION, "max_duration") /* MAX_CALL_S reached */                                       \
    X(SHUTDOWN, "shutdown")         /* the gateway is stopping */                                  \
    X(HANGUP, "closed_by_us")       /* we closed the socket (hand-off, policy) */

enum cs_end_reason {
#define CS_END_ENUM(name, label) CS_END_##name,
    CS_END_MAP(CS_END_ENUM)
#undef CS_END_ENUM
        CS_END_COUNT
};
const char *cs_end_label(enum cs_end_reason r);
/* "one-way", "two-way", "relay", "gather". */
const char *cs_stream_mode_label(enum cs_stream_mode m);

/* Event types stored and streamed to monitors. X(name, label) */
#define CS_EVENT_MAP(X)                                                                            \
    X(START, "start")                                                                              \
    X(STOP, "stop")                                                                                \
    X(DTMF, "dtmf")                                                                                \
    X(MARK, "mark")                                                                                \
    X(CLEAR, "clear")                                                                              \
    X(ERROR, "error")                                                                              \
    X(STATUS, "status")                 /* Twilio call status callback */                          \
    X(STREAM_STATUS, "stream_status")   /* Twilio stream status callback */                        \
    X(WEBHOOK, "webhook")               /* the voice webhook answered */                           \
    X(RECORDING, "recording")           /* a recording failed, resumed or was finished */         \
    X(TRANSCRIPTION, "transcription")   /* transcription started, unavailable or failed */ \
    X(BARGE_IN, "barge_in")             /* the caller cut the agent short */                       \
    X(TURN, "turn")                     /* the agent answered: each stage's latency */             \
    X(AGENT, "agent")                   /* the agent started, failed, or said something */         \
    X(RELAY, "relay")                   /* relay streams: interrupt, end, the provider's error */ \
    X(CONTROL, "control")               /* call control asked: hang up, transfer, streams… */      \
    X(GATHER, "gather")                 /* a gather conversation: begun, a turn, an answer */ \
    X(NODE_LOST, "node_lost")           /* the node holding the call died: ended abnormal */ \
    X(BUS_OUTAGE, "bus_outage")         /* the bus's server went away (a cluster's view) */ \
    X(BUS_RESTORED, "bus_restored")     /* … and came back */                                \
    X(STORE_OUTAGE, "store_outage")     /* the store's writes fail: they queue and spill */ \
    X(STORE_RESTORED, "store_restored") /* … and are written again */

enum cs_event_type {
#define CS_EVENT_ENUM(name, label) CS_EVENT_##name,
    CS_EVENT_MAP(CS_EVENT_ENUM)
#undef CS_EVENT_ENUM
        CS_EVENT_COUNT
};
const char *cs_event_label(enum cs_event_type t);

typedef struct cs_stream_stats {
    uint64_t frames[2];      /* media messages per track (CS_TRACK_*) */
    uint64_t bytes[2];       /* audio bytes per track */
    uint64_t seq_gaps;       /* sequence numbers skipped */
    uint64_t seq_reordered;  /* sequence numbers that went backwards */
    uint64_t ts_gaps;        /* media timestamps that jumped ahead (silence inserted) */
    uint64_t bad[CS_BAD_COUNT];
    uint64_t frames_out;     /* media messages we sent */
    uint64_t bytes_out;      /* audio bytes we sent */
    uint64_t marks_sent;
    uint64_t marks_played;   /* echoed after their audio played */
    uint64_t marks_cleared;  /* echoed because a clear discarded their audio */
    uint64_t marks_unknown;  /* echoes of names we never sent */
    uint64_t clears;
    uint64_t barge_ins;      /* clears for the caller's speech or keys */
    uint64_t underruns;      /* our audio sent late, a gap in an utterance */
    uint64_t utterances;     /* begun by the agent */
    uint64_t dtmf;
    uint64_t messages;       /* everything received after start */
    uint64_t prompts;        /* relay: the caller's words (interim and final) */
    uint64_t interrupts;     /* relay: the caller cut the agent short */
    uint64_t texts_out;      /* relay: messages we sent (tokens, play, digits, end) */
} cs_stream_stats;

typedef struct cs_call cs_call;
typedef struct cs_stream cs_stream;
typedef struct cs_calls cs_calls;
typedef struct cs_transcript cs_transcript; /* call/talk.h */

/* How a stream's outbound messages reach its socket (the media socket provides it). */
typedef struct cs_stream_sink {
    int (*media)(void *data, const uint8_t *ulaw, size_t n);
    int (*mark)(void *data, cs_str name);
    int (*clear)(void *data);
    /* Ends the stream from our side (the transport closes, then ends the stream). */
    void (*close)(void *data);
    void *data;
    /* Relay streams send this instead of media, mark and clear. */
    int (*relay)(void *data, const cs_relay_out *m);
} cs_stream_sink;

typedef struct cs_mark {
    char name[CS_MARK_NAME_MAX + 1];
    uint64_t sent_ns;
    uint32_t clear_epoch; /* clears sent before this mark */
    cs_playout_mark what; /* which utterance and sentence it follows */
    uint64_t pos;         /* where that audio ends on the call's timeline, in frames */
} cs_mark;

typedef struct cs_agent cs_agent;
typedef struct cs_agent_ops cs_agent_ops;
/* What agents need from the gateway (engines, clients, settings): defined by agent/. */
typedef struct cs_agent_env cs_agent_env;

/* How the calls talk back (call/talk.h). */
typedef struct cs_talk {
    /* Which agent a new two-way stream gets (NULL: none; it listens only). */
    const cs_agent_ops *(*agent_for)(void *data, const cs_pevent *start);
    void *agent_data;
    const cs_agent_env *env;
    struct cs_control *control; /* agents' transfers and hang-ups; NULL: off */
    uint32_t lead_ms;       /* PLAYOUT_LEAD_MS */
    uint32_t max_ms;        /* PLAYOUT_MAX_S in ms: audio queued per stream */
    uint32_t mark_grace_ms; /* an utterance whose end mark never came back is done then */
    bool barge_in;          /* BARGE_IN */
    cs_vad_opts vad;        /* the caller's voice activity detector */
    cs_stream *talkers;     /* streams with an agent */
    size_t ntalkers;
    size_t closing;         /* agents closed but not yet finished */
    void *timer;            /* the pacing timer (uv_timer_t), once started on a loop */
} cs_talk;

struct cs_stream {
    cs_call *call;
    cs_calls *calls;
    char sid[CS_SID_MAX + 1];
    unsigned tracks;           /* CS_TRACK_BIT set announced in start */
    enum cs_stream_mode mode;
    int64_t started_ms, ended_ms; /* wall clock */
    int64_t offset_ms;         /* this stream's timestamps + offset = call timeline */
    uint64_t clock_origin_ms;  /* the calls' clock when it started: its timestamps' zero */
    cs_stream_stats stats;
    cs_stream_sink sink;
    void *owner;               /* the media socket's state */
    /* timeline, in frames of the call's timeline */
    uint64_t heard_end;        /* end of the latest caller audio */
    uint64_t play_end;         /* where the audio we sent ends */
    /* talking back (talk.c) */
    const cs_agent_ops *agent_ops; /* the agent chosen for it (NULL: none) */
    cs_agent *agent;           /* NULL: listening only, or its agent failed to start */
    cs_playout playout;
    cs_vad vad;                /* on the caller's audio */
    bool mid_utterance;        /* the last frame sent was not an utterance's last */
    uint8_t hangup;            /* 1: the agent hangs up; 2: once what it said has played */
    struct agent_ctl *ctl;     /* the agent's transfer or hang-up at the provider, or NULL */
    struct {                   /* the caller's turn being answered */
        bool armed;            /* the caller spoke: the answer's stages are noted */
        bool open;             /* and stopped: the answer's first frame measures it */
        bool began;            /* an utterance began since the caller began */
        uint64_t first;        /* where its first frame was placed */
        uint64_t end;          /* where the caller's speech ended, frames */
        uint64_t at[4];        /* when each stage of the answer came (enum cs_turn_stage) */
        unsigned noted;        /* bit per stage noted */
    } turn;
    cs_stream *talk_prev, *talk_next;
    uint64_t next_ts[2];       /* expected next media timestamp per track, ms (stream's) */
    int64_t last_seq;
    /* marks awaiting their echo: a ring */
    cs_mark *marks;
    uint32_t marks_head, marks_len, marks_cap;
    uint32_t clear_epoch;
    uint32_t bad_logged;       /* kinds already logged once */
    struct {                   /* relay streams: the agent's utterance, as text */
        uint32_t utt;          /* in flight (its text sent, not yet known heard), 0: none */
        uint32_t next_id;
        uint32_t greeting;     /* the provider's greeting, said for the agent (0: none) */
        bool ended;            /* its last token went */
        uint64_t start_pos;    /* where it began on the timeline */
        cs_buf text;           /* what was sent of it */
        uint64_t prompt_id;    /* the caller's words being recognised */
        uint32_t prompt_at;    /* when their first version came, ms */
        bool prompt_open;      /* an interim came, not yet its final */
        char *handoff;         /* what `end` hands over, or NULL */
    } relay;
    cs_log_ctx log;
};

struct cs_call {
    cs_calls *calls;
    cs_pool pool;
    const char *sid, *account_sid, *from, *to;
    const cs_kv *params; /* customParameters of the first stream */
    size_t nparams;
    int64_t started_ms, ended_ms;
    cs_stream *streams[CS_CALL_MAX_STREAMS];
    size_t nstreams;
    cs_recording *rec;
    struct rec_ctx *rec_ctx; /* what its callbacks need; outlives the call */
    unsigned rec_channels;
    cs_log_ctx log;
};

/* What observers are told; any callback may be NULL. All on the loop thread; pointers
 * are valid during the call only. */
typedef struct cs_call_observer {
    void (*call_started)(void *o, const cs_call *call);
    void (*call_ended)(void *o, const cs_call *call);
    void (*stream_started)(void *o, const cs_stream *s);
    void (*stream_ended)(void *o, const cs_stream *s, enum cs_end_reason why);
    /* `detail` is a JSON object (or NULL); `s` may be NULL for call-level events. */
    void (*event)(void *o, const cs_call *call, const cs_stream *s, enum cs_event_type type,
                  int64_t at_ms, const char *detail);
    /* Audio on the call's timeline: the caller's as it arrives, ours as we send it. */
    void (*audio)(void *o, const cs_stream *s, enum cs_speaker who, uint64_t pos,
                  const uint8_t *ulaw, size_t n);
    /* What the agent said, as heard: an utterance that played to its end or was cut. */
    void (*said)(void *o, const cs_stream *s, const cs_heard *h);
    /* The caller's words as someone else recognised them — the provider (relay streams),
     * or the agent's own service (a speech-to-speech model transcribes what it hears): a
     * line of the caller's transcript. */
    void (*heard)(void *o, const cs_stream *s, const cs_transcript *t);
    /* A recording's file, once made: the call goes on (it may be served meanwhile). */
    void (*recording_started)(void *o, const char *call_sid, const char *path);
    /* A finished recording: the file and its length (also when writing failed part way:
     * what it holds is kept). */
    void (*recording)(void *o, const char *call_sid, const char *path, uint64_t frames);
    void *data;
} cs_call_observer;

/* Registry-wide counters for /metrics. */
typedef struct cs_calls_stats {
    uint64_t calls_total, streams_total;
    uint64_t frames_in[2], bytes_in[2];
    uint64_t frames_out, bytes_out;
    uint64_t bad[CS_BAD_COUNT];
    uint64_t ended[CS_END_COUNT];
    uint64_t marks_sent, marks_played, marks_cleared, clears, dtmf, seq_gaps;
    uint64_t barge_ins, underruns, utterances, playout_full, agent_failures;
    uint64_t relay_prompts, relay_interrupts, relay_texts_out; /* relay streams */
    cs_hist frame_seconds;    /* time to handle one inbound media message */
    cs_hist voice_to_voice;   /* the caller's end of speech → the agent's first frame */
    cs_hist barge_in_seconds; /* the caller's speech onset → clear */
} cs_calls_stats;

struct cs_calls {
    cs_map by_stream;
    cs_map by_call;
    cs_call_observer observers[CS_CALL_MAX_OBSERVERS];
    size_t nobservers;
    cs_recorders *recorders; /* NULL: recordings off */
    /* Media timestamps are checked against each stream's clock (cs_calls_init sets the
     * defaults; the owner may change them). */
    uint64_t max_ts_ms;         /* MAX_CALL_S: no audio goes past it */
    uint64_t ts_tolerance_ms;   /* how far ahead of arrival, or back, a timestamp may be */
    uint64_t (*clock_ms)(void); /* monotonic ms (cs_mono_ms; tests may stand in) */
    cs_talk talk;
    cs_calls_stats stats;
};

/* ---- registry ---- */

void cs_calls_init(cs_calls *calls, cs_recorders *recorders);
/* Frees the registry. Stream owners should have ended their streams; any left are
 * ended with `why`. */
void cs_calls_free(cs_calls *calls, enum cs_end_reason why);
int cs_calls_observe(cs_calls *calls, const cs_call_observer *o);
size_t cs_calls_active(const cs_calls *calls);
size_t cs_calls_streams(const cs_calls *calls);
cs_stream *cs_calls_stream(const cs_calls *calls, cs_str sid);
cs_call *cs_calls_call(const cs_calls *calls, cs_str sid);
/* Tells observers about a call-level event (status callbacks, webhook), live or not. */
void cs_calls_event(cs_calls *calls, const char *call_sid, enum cs_event_type type,
                    const char *detail);

/* ---- streams ---- */

/* Starts a stream from a `start` event. A two-way stream gets the agent calls->talk
 * picks, opened after observers heard of the stream. `stereo` asks for a two-channel
 * recording (the outbound track is streamed; an agent asks for it too). Errors: CS_ESTATE (the StreamSid
 * is live already), CS_ELIMIT (the call has CS_CALL_MAX_STREAMS streams), -ENOMEM.
 * The stream starts with `pre` (bad messages seen before start) in its counters. */
int cs_stream_begin(cs_calls *calls, const cs_pevent *start, enum cs_stream_mode mode, bool stereo,
                    const cs_stream_sink *sink, void *owner, const cs_stream_stats *pre,
                    cs_stream **out);
/* What cs_stream_event found out about a message. */
typedef struct cs_stream_outcome {
    uint64_t pos; /* media: where its audio was placed, in frames of the call's timeline */
    bool skipped; /* media: not placed anywhere (a CS_BAD_OVERRUN frame); pos is not set */
    bool played;  /* mark echo: "played" (true) or "discarded by a clear" (false) */
} cs_stream_outcome;

/* Everything received after start (media, dtmf, mark, stop); `out` (may be NULL) is
 * filled for media and marks. Media is placed by its timestamp, unless that is off the
 * stream's clock — its audio past max_ts_ms, more than ts_tolerance_ms ahead of the time
 * it arrived, or a jump back more than that behind the track's audio — then it is counted
 * as a bad frame (CS_BAD_TIMESTAMP) and placed by arrival: right after the track's
 * previous audio, or at its arrival time if the track paused longer than the tolerance.
 * So no audio starts more than the tolerance ahead of its arrival or ends past
 * max_ts_ms: media that could go nowhere else (bad timestamps sent faster than real
 * time, or at the end of max_ts_ms) is counted as CS_BAD_OVERRUN and skipped: not
 * recorded, nor heard by observers or the agent. Unknown marks return CS_ENOTFOUND. */
int cs_stream_event(cs_stream *s, const cs_pevent *ev, cs_stream_outcome *out);
/* A message that was refused: counted, logged once per kind, and the first of each kind
 * becomes an `error` event. */
void cs_stream_bad(cs_stream *s, enum cs_bad kind, const char *why);
/* Ends the stream: observers hear of it, its call ends with its last stream, both are
 * freed. The owner must not use `s` afterwards. */
void cs_stream_end(cs_stream *s, enum cs_end_reason why);

/* A customParameter of the stream's call (from its first stream's start), or NULL. */
const char *cs_stream_param(const cs_stream *s, const char *name);

/* Where the call's timeline is now for this stream, in frames (its clock, as its
 * timestamps are checked against). */
uint64_t cs_stream_now(const cs_stream *s);
/* Frames of our audio sent but not yet played, as far as we can tell. */
uint64_t cs_stream_unplayed(const cs_stream *s);

/* Stats as JSON (for /streams and the store). */
int cs_stream_stats_json(const cs_stream *s, cs_buf *out);

#endif
