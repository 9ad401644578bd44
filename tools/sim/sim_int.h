/* Internals of the simulator shared by its files. */
#ifndef CS_SIM_INT_H
#define CS_SIM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "net/conn.h"
#include "net/fetch.h"
#include "net/wsconn.h"
#include "provider/provider.h"

#define SIM_MAX_PARAMS    CS_PEV_MAX_PARAMS
#define SIM_URL_MAX       2048
#define SIM_FRAME_BYTES   160        /* 20 ms of 8 kHz μ-law, as Twilio sends */
#define SIM_FRAME_MS      20
#define SIM_CLOSE_WAIT_MS 3000 /* after stop, how long to wait for the server */

/* ---- the TwiML the webhook answered ---- */

typedef struct sim_twiml {
    char stream_url[SIM_URL_MAX];
    bool connect;     /* <Connect> (two-way) or <Start> (one-way) */
    bool both_tracks; /* <Start> with track="both_tracks" */
    cs_kv params[SIM_MAX_PARAMS];
    size_t nparams;
    char storage[16384]; /* the parameters' text */
} sim_twiml;

/* Reads the first <Stream> of a TwiML document. 0 or CS_EPARSE. */
int sim_twiml_parse(const char *xml, size_t n, sim_twiml *out);

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
    uint64_t bad_rx; /* server messages we could not parse */
} sim_counts;

typedef struct sim_call sim_call;

typedef struct sim {
    sim_opts o;
    uv_loop_t *loop;
    cs_net *net;
    cs_fetch *fetch; /* the webhooks */
    uint8_t *ulaw; /* the audio to send, 8 kHz μ-law */
    size_t nulaw;
    uint64_t frames; /* per call */
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
/* Called by a call once it is over (it has released its handles or will). */
void sim_call_finished(sim *s);

#endif
