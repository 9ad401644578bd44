/* A fake Deepgram live-transcription server (GET /v1/listen upgraded to a WebSocket) for
 * tests, on a loop the test runs, built on our own server and WebSocket code. It speaks
 * the documented protocol: checks "Authorization: Token <key>" (401 otherwise), the audio
 * format parameters (400 unless encoding=mulaw&sample_rate=8000) and the limit of 100
 * keywords or keyterms (400), refusing as Deepgram does (dg-request-id and dg-error
 * headers, a JSON body); takes binary μ-law audio, and answers with Results derived from
 * it, each connection under its own request id ("fake-1", "fake-2"…, in the Results'
 * metadata and the final Metadata). It cannot recognise speech: it
 * segments by energy (a 20 ms frame whose mean |sample| reaches 1000 is speech; real
 * recordings work as long as their background stays below that) and transcribes each
 * utterance as the next text of a script, with start/duration/word times counted from the
 * start of the audio received on that socket, the way Deepgram counts them:
 *  - interims (is_final false) every 200 ms of speech, revealing the text word by word,
 *    when the client asked for interim_results;
 *  - a final (is_final, speech_final) once the client's `endpointing` ms of silence
 *    follow speech; an empty final for every second of silence between utterances;
 *  - KeepAlive: nothing; CloseStream: a final for speech in progress, a Metadata
 *    summary, then close 1000; 10 s without audio or KeepAlive, or without any audio
 *    since the upgrade whatever KeepAlives came: close 1011 "NET-0001";
 *  - with `paced`, audio is taken at most 1.25× real time from the first audio on, as
 *    Deepgram does; the rest waits (and CloseStream waits for it). Off by default so that
 *    tests may feed minutes of audio in a few milliseconds.
 * Faults make it misbehave on chosen connections (see dg_fake_fault). Everything runs on
 * the loop given to dg_fake_start: call the functions below, and read the stats, on that
 * loop's thread (or once it has stopped running). */
#ifndef CS_TEST_DEEPGRAM_FAKE_H
#define CS_TEST_DEEPGRAM_FAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "net/http.h"

#define DG_FAKE_CONFIDENCE 0.875 /* of every transcript (exact in binary) */

typedef enum dg_fake_fault {
    DG_FAKE_NONE = 0,
    DG_FAKE_DROP,   /* after fault_after audio bytes, close the TCP connection (no close frame;
                       what was answered before is flushed); 0: right after the upgrade */
    DG_FAKE_ERROR,  /* after fault_after audio bytes, send an Error message and close 1011 */
    DG_FAKE_REFUSE, /* answer the upgrade with refuse_status and a text body instead of 101,
                       as a proxy in front of Deepgram would: no dg- headers */
    DG_FAKE_STALL,  /* take everything, answer nothing, never close */
    DG_FAKE_JUNK,   /* first send what a client must skip: not JSON, binary, an unused
                       type, Results without times, an empty interim */
    DG_FAKE_CLOSE,  /* after fault_after audio bytes, close with close_code and close_reason
                       (Deepgram's 1011 "NET-0000", 1011 "NET-0001", 1008 "DATA-0000") */
} dg_fake_fault;

typedef struct dg_fake_opts {
    const char *api_key;       /* the key expected after "Token " */
    const char *const *script; /* text of utterance 1, 2, …; past its end "utterance N" */
    size_t nscript;
    /* A noisy line: finals never carry speech_final; when the client asked for
     * utterance_end_ms, an UtteranceEnd follows that long a gap after the last word. */
    bool noisy;
    /* After every final with words, an UtteranceEnd with last_word_end -1 (no word end
     * known), which a client must not take for the end of the utterance. */
    bool stray_utterance_end;
    bool paced;       /* take audio at most 1.25× real time (see above) */
    unsigned idle_ms; /* the NET-0001 timeout; 0: Deepgram's 10 s */
    dg_fake_fault fault;
    int faulty;          /* how many upgrade requests (the first ones) get the fault; < 0: all */
    size_t fault_after;  /* DROP, ERROR, CLOSE */
    int refuse_status;   /* REFUSE */
    uint16_t close_code; /* CLOSE */
    const char *close_reason; /* CLOSE */
    unsigned key_uses; /* upgrades the key is good for, then 401 as for a revoked key (0: ∞) */
} dg_fake_opts;

typedef struct dg_fake_stats {
    unsigned upgrades;              /* WebSockets accepted */
    unsigned refused;               /* upgrade requests answered with an error status */
    unsigned keepalives;            /* KeepAlive messages received */
    unsigned close_streams;         /* CloseStream messages received */
    unsigned net0001;               /* streams closed for lack of audio and KeepAlive */
    uint64_t audio_bytes;           /* taken, over all connections */
    uint64_t max_gap_ms;            /* longest a stream went without a message from the
                                       client, between its first audio and CloseStream */
    char query[CS_HTTP_MAX_TARGET]; /* of the last upgrade request */
    char authorization[256];        /* idem, "" when absent */
} dg_fake_stats;

typedef struct dg_fake dg_fake;

/* Listens on 127.0.0.1 (any free port). `o` is copied; the script must outlive the fake. */
int dg_fake_start(dg_fake **out, uv_loop_t *loop, const dg_fake_opts *o);
/* "ws://127.0.0.1:PORT/v1/listen" */
const char *dg_fake_url(const dg_fake *f);
const dg_fake_stats *dg_fake_stats_get(const dg_fake *f);
/* Closes every connection, runs the loop until they are gone, and frees the fake. */
void dg_fake_free(dg_fake *f);

#endif
