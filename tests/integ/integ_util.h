/* Integration tests: the real binary on a loopback port with a fresh DATA_DIR, driven by
 * raw sockets and by `callstream sim`, checked through its API, its metrics, its files
 * and its SQLite database. Checks count failures instead of aborting, so one run reports
 * everything that is wrong. */
#ifndef IT_UTIL_H
#define IT_UTIL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/buf.h"
#include "net/ws.h"

/* ---- checks ---- */

extern int it_failures;
#define IT_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) it_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                              \
    } while (0)
void it_fail(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Exit code for main: 0 when every check passed. */
int it_done(const char *name);

/* A test program's named cases: main runs those named on its command line, or all. */
typedef struct it_case {
    const char *name;
    void (*run)(void);
} it_case;
/* Runs them (SIGPIPE ignored) and returns it_done(name). */
int it_run(const char *name, const it_case *cases, size_t n, int argc, char **argv);

void it_sleep_ms(int ms);
/* `c` `n` times, NUL-terminated, malloc'ed. */
char *it_repeat(char c, size_t n);
/* A monotonic clock in ms, for deadlines. */
long long it_now_ms(void);
/* The same in µs (CLOCK_MONOTONIC, as uv_hrtime). */
long long it_now_us(void);
/* The wall clock in ms since the epoch, as the server stores times. */
long long it_wall_ms(void);
/* Asks `cond(data)` every 20 ms for up to timeout_ms; its last answer. */
bool it_until(bool (*cond)(void *data), void *data, int timeout_ms);

/* ---- the server ---- */

typedef struct it_server {
    pid_t pid;
    int port;
    char dir[256];  /* the test's temp dir */
    char data[300]; /* DATA_DIR inside it */
    char log[300];  /* the server's output */
    char url[64];   /* http://127.0.0.1:PORT */
    char token[64]; /* an API token made with `callstream token create` before start */
    int nofile;     /* > 0: the server's RLIMIT_NOFILE, soft and hard (set before a start) */
} it_server;

/* "Authorization: Bearer <token>\r\n" for the last server started (it_http, it_get_json
 * and it_metric send it); empty to send none. */
extern char it_auth[128];

/* Starts `callstream serve` on a free port with a new DATA_DIR and `args` (a NULL-ended
 * list of "--flag", "value" pairs); waits until /health answers. 0 or -1. */
int it_server_start(it_server *s, const char *const *args);
/* it_server_start, counting a failure as a failed check: whether it runs. */
bool it_server_up(it_server *s, const char *const *args);
/* The same with RLIMIT_NOFILE (soft and hard, as the server raises soft to hard) set to
 * `nofile` for the server, here and at restarts. */
int it_server_start_nofile(it_server *s, const char *const *args, int nofile);
/* The first half of it_server_start: the temp dir, DATA_DIR with its database and the
 * test's API token, but no server yet (it_server_restart starts it). 0 or -1. */
int it_server_prepare(it_server *s);
/* Starts another node of `like`'s cluster: its own port and DATA_DIR, the same store (the
 * environment's DATABASE_URL), so `like`'s API token works on it too. 0 or -1. */
int it_server_join(it_server *s, const it_server *like, const char *const *args);
/* Its first half: the dirs, a port (s->url: a NODE_URL) and `like`'s token, no server yet
 * (it_server_restart starts it). 0 or -1. */
int it_server_join_prepare(it_server *s, const it_server *like);
/* Starts it again on the same port and DATA_DIR (after a stop or a crash). */
int it_server_restart(it_server *s, const char *const *args);
/* Sends `sig` and waits up to timeout_ms; returns the exit status, or -1 if it had to be
 * killed or died of a signal. */
int it_server_stop(it_server *s, int sig, int timeout_ms);
/* Runs `callstream <args>` with this server's DATA_DIR, feeding `input` (or nothing) on
 * standard input; its first line of output goes to `out`. Returns its exit status. */
int it_cli(const it_server *s, const char *args, const char *input, char *out, size_t cap);
/* The first admin's password, from the log line that shows it once ("" if none). */
void it_admin_password(const it_server *s, char *out, size_t cap);
/* Signs in as admin and gives "Cookie: cs_session=…\r\n" in `out`. 0 or -1. */
int it_session(const it_server *s, char *out, size_t cap);
/* The same as `user` with `password`. */
int it_sign_in(const it_server *s, const char *user, const char *password, char *out, size_t cap);
/* A self-signed certificate for 127.0.0.1 and localhost in the test's dir, for
 * --tls-cert and --tls-key: paths in `cert` and `key` (each `cap` bytes). 0 or -1. */
int it_tls_cert(const it_server *s, char *cert, char *key, size_t cap);
/* The server refuses to start with `args`, saying `why` in its log (a failed check if
 * not). */
void it_refused(const char *const *args, const char *why);
/* Lines of the server's log holding `needle`. */
int it_log_count(const it_server *s, const char *needle);
/* Removes the temp dir (kept when checks failed, or with CS_KEEP set, for a look). */
void it_server_cleanup(it_server *s);

/* ---- HTTP ---- */

/* A TCP connection to 127.0.0.1:port from address `from` (NULL: any; 127.0.0.2 and up
 * are other loopback addresses), with a receive buffer of `rcvbuf` bytes (0: default).
 * The socket, or -1. */
int it_tcp(int port, const char *from, int rcvbuf);

typedef struct it_resp {
    int status;
    char head[8192];
    char *body; /* NUL-terminated */
    size_t body_len;
    cJSON *json; /* when the body is JSON */
} it_resp;

/* Sends raw bytes and reads the answer until the server closes. 0 or -1. */
int it_http_raw(int port, const void *req, size_t len, it_resp *r);
/* Sends raw bytes and leaves at once, as a client that gave up. 0 or -1. */
int it_http_leave(int port, const void *req, size_t len);
/* A request with "Connection: close", it_auth, and `headers` (extra lines or NULL). */
int it_http(int port, const char *method, const char *target, const char *headers, const char *body,
            it_resp *r);
/* The same without it_auth: a browser, whose credential (if any) is in `headers`. */
int it_http_browser(int port, const char *method, const char *target, const char *headers,
                    const char *body, it_resp *r);
void it_resp_free(it_resp *r);
/* POSTs a form of `n` `names`/`values` to `target` (path and query) as Twilio does:
 * signed with `token` over the server's URL (NULL: unsigned). The status (-1: none), and
 * the body answered into `out` (may be NULL). */
int it_twilio_post(const it_server *s, const char *token, const char *target,
                   const char *const *names, const char *const *values, size_t n, char *out,
                   size_t cap);
/* The first line of the head containing `name` (case-insensitive), or NULL. */
const char *it_header(const it_resp *r, const char *name);
/* A member of a JSON object: the string ("" if not one), the number (-1 if not one). */
const char *it_str(const cJSON *o, const char *key);
int it_num(const cJSON *o, const char *key);
/* GET a JSON document; NULL unless 200 and JSON. Caller frees with cJSON_Delete. */
cJSON *it_get_json(int port, const char *target);
/* The live stream `sid` in /streams (a detached copy, caller frees), polling up to
 * timeout_ms until `ready` says yes (NULL: any). */
cJSON *it_live_stream(int port, const char *sid, bool (*ready)(const cJSON *stream),
                      int timeout_ms);
/* A value from /metrics ("name" or "name{labels}"), -1 if absent. */
double it_metric(int port, const char *series);
/* The same from the text of a /metrics answer. */
double it_metric_in(const char *text, size_t len, const char *series);
/* GET /api/v1/calls/<sid>: the "call" object (a detached copy, caller frees) or NULL. */
cJSON *it_call(int port, const char *sid);
/* The call once its recording is finished and attached (it has a duration), polling up
 * to timeout_ms; NULL if it never is. Caller frees. */
cJSON *it_call_recorded(int port, const char *sid, int timeout_ms);
/* The call's stored transcript joined by " | ": every final segment as "speaker:text"
 * ("speaker[cut]:text" for an agent line cut short), or with `speaker`, that speaker's
 * texts only. */
void it_transcript(int port, const char *sid, const char *speaker, char *out, size_t cap);
/* The SID of the call from `from` (a test gives each call its own caller number), polling
 * up to timeout_ms. Whether it was found. */
bool it_call_from(int port, const char *from, char *sid, size_t cap, int timeout_ms);
/* The call once it ended (ended_at set), polling up to timeout_ms; NULL if it never did.
 * Caller frees. */
cJSON *it_call_ended(int port, const char *sid, int timeout_ms);
/* Call `sid` once it has `n` events of `type` (another loop's writes land a little later
 * than this one's), or as it is after `timeout_ms`. */
cJSON *it_call_events_at_least(int port, const char *sid, const char *type, int n,
                               int timeout_ms);
/* A call's events read through the API in small pages: how many, or -1 when they do not
 * come in time order. */
long long it_events_in_order(int port, const char *sid);
/* The call's events of `type` whose detail has "type" `sub` (NULL: any). */
int it_events(const cJSON *call, const char *type, const char *sub);
/* The call's events of `type` whose detail has "state" `state` (NULL: any). */
int it_call_events(const cJSON *call, const char *type, const char *state);

/* ---- the simulator ---- */

/* Runs `callstream sim --url <server> <args>` (a printf format) to the end and returns
 * its JSON summary (NULL on failure); *exit gets its exit status. */
cJSON *it_sim(const it_server *s, int *exit_status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Runs it for its refusal: its exit status, and the first line it wrote on standard
 * error in `err` (standard output is dropped). */
int it_sim_err(const it_server *s, char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Starts it in the background; it_sim_wait collects the summary. */
pid_t it_sim_spawn(const it_server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
cJSON *it_sim_wait(pid_t pid, int *exit_status);

/* Runs `callstream <args>` (a printf format; any command) to the end: its JSON report on
 * standard output (NULL if none), its exit status in *exit_status, and the first line it
 * wrote on standard error in `err`. */
cJSON *it_command(int *exit_status, char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- a raw WebSocket client ---- */

typedef struct it_ws {
    int fd;
    cs_ws_reader reader;
    cs_buf in;
} it_ws;

/* Opens `path` with the given extra header lines; 0 on 101, else the HTTP status (or -1
 * if there was none). */
int it_ws_connect(it_ws *w, int port, const char *path, const char *extra);
/* The same with a receive buffer of `rcvbuf` bytes (a slow reader fills it soon). */
int it_ws_connect_buffered(it_ws *w, int port, const char *path, const char *extra, int rcvbuf);
/* A well-formed masked frame. */
int it_ws_send(it_ws *w, enum cs_ws_op op, const void *data, size_t len);
int it_ws_send_text(it_ws *w, const char *text);
/* Bytes exactly as given. */
int it_ws_send_raw(it_ws *w, const void *bytes, size_t n);
/* The next event within timeout_ms: 1, 0 on timeout, -1 when the socket closed. */
int it_ws_next(it_ws *w, cs_ws_event *ev, int timeout_ms);
/* A media stream as Twilio opens one: connected, then start for `call`/`stream` with the
 * inbound track. 0, or what it_ws_connect said. */
int it_media_start(it_ws *w, int port, const char *call, const char *stream);
/* The same on a socket already upgraded. */
int it_media_begin(it_ws *w, const char *call, const char *stream);
/* One inbound media message: `n` μ-law bytes of `code` at `timestamp_ms`. */
int it_media_frame(it_ws *w, const char *stream, uint64_t seq, uint64_t timestamp_ms, uint8_t code,
                   size_t n);
/* stop, then the server's close frame: its code, or -1. */
int it_media_stop(it_ws *w, const char *call, const char *stream, uint64_t seq);
/* Binary audio (a call_streams source): `data` in binary frames whose sizes cycle
 * through sizes[0..nsizes), pause_ms between frames. 0 or -1. */
int it_ws_send_frames(it_ws *w, const void *data, size_t len, const size_t *sizes, size_t nsizes,
                      int pause_ms);
/* Reads what the server sends for timeout_ms, or until it closes: the bytes of its binary
 * frames; *frames the binary frames, *odd those of an odd length, *texts its text
 * messages (each may be NULL). */
size_t it_ws_recv_binary(it_ws *w, int timeout_ms, size_t *frames, size_t *odd, size_t *texts);
/* POST /api/v1/call_streams with `body` (JSON) on a connection of its own: the answer's
 * status (-1: none); on 201 the stream's id, socket path (/call_streams/CS…) and token. */
int it_call_stream_create(int port, const char *body, char id[64], char path[128],
                          char token[128]);
/* GET /api/v1/call_streams/{id}: its status, or the answer's body when not 200 ("" with
 * none). `out`. */
const char *it_call_stream_status(int port, const char *id, char *out, size_t cap);
/* The source's socket for `path` with `token` (NULL: none): as it_ws_connect. */
int it_call_stream_connect(it_ws *w, int port, const char *path, const char *token);
/* Reads until the server's close frame; its code, or -1 if none came. */
int it_ws_close_code(it_ws *w, int timeout_ms);
void it_ws_close(it_ws *w);

/* ---- Twilio's side of a ConversationRelay session (protocol.md §9.2) ---- */

#define IT_RELAY_MAX 512 /* messages kept */

typedef struct it_relay {
    it_ws ws;
    cJSON *got[IT_RELAY_MAX]; /* what the gateway sent, parsed (NULL: not JSON) */
    size_t ngot;
    bool closed;
} it_relay;

/* Opens /twilio/relay signed with `token` (NULL: unsigned) for ws://127.0.0.1:PORT, as
 * Twilio does; 0 on 101, else what it_ws_connect said. */
int it_relay_open(it_relay *r, int port, const char *token);
/* The session's setup for `call` (session id `session`); `params` a JSON object of
 * customParameters, or NULL. */
int it_relay_setup(it_relay *r, const char *session, const char *call, const char *params);
int it_relay_prompt(it_relay *r, const char *text, bool last);
int it_relay_dtmf(it_relay *r, char digit);
int it_relay_interrupt(it_relay *r, const char *heard, unsigned ms);
/* Reads what comes for up to timeout_ms (until the socket closes). */
void it_relay_read(it_relay *r, int timeout_ms);
/* The tokens of the next turn, from message *at on: waits up to timeout_ms for a text
 * with last=true and writes the tokens joined into `out`; *at moves past it. */
bool it_relay_turn(it_relay *r, size_t *at, char *out, size_t cap, int timeout_ms);
/* The first message of `type` from `from` on, waiting up to timeout_ms; its index or -1. */
int it_relay_wait(it_relay *r, size_t from, const char *type, int timeout_ms);
void it_relay_free(it_relay *r);

/* ---- a caller on a media stream: the phone and Twilio's side of it ---- */

#define IT_PHONE_MARKS 256 /* marks awaiting their echo */

/* Sends 20 ms frames on an absolute clock — silence, or a clip it was told to say — and
 * treats what comes back as Twilio does: media plays in order in real time, a mark is
 * echoed once the audio before it has played, a clear drops what is buffered and echoes
 * every pending mark. Times are it_now_ms. */
typedef struct it_phone {
    it_ws ws;
    char call[64], stream[64];
    bool closed;     /* the server ended the stream */
    long long t0;    /* when media began */
    uint64_t frames; /* sent: the next is due at t0 + 20 * frames */
    uint64_t seq;
    /* what we say instead of silence */
    uint8_t *talk;
    size_t talk_len, talk_at;
    size_t voice_from, voice_to;       /* bytes of the clip that hold speech (frame energy) */
    long long onset_ms, speech_end_ms; /* when those were sent; 0: not yet */
    /* what the agent sent */
    long long play_until; /* when what is buffered has played */
    struct {
        char name[64];
        long long due;
    } marks[IT_PHONE_MARKS];
    size_t nmarks;
    uint64_t media_bytes, voiced_frames;
    int clears, marks_echoed, dtmf_sent;
    bool heard;          /* a voiced agent frame came since the last say or key */
    long long answer_ms; /* arrival of the first voiced agent frame after our speech ended */
    long long clear_ms;  /* arrival of the first clear after our speech began */
    /* When set (by the test, after it_phone_start), every byte of media the agent sent
     * is appended to `got`, and every byte we sent to `sent` (each up to its bound). */
    cs_buf *got, *sent;
    /* it_now_us of the first media and the first clear since the test last zeroed them. */
    long long first_media_us, first_clear_us;
} it_phone;

/* Opens a media stream for `call`/`stream` as Twilio would, with `params` (a=1&b=2, no
 * escapes; NULL: none) as customParameters. 0, or what it_ws_connect said. */
int it_phone_start(it_phone *p, int port, const char *call, const char *stream, const char *params);
/* Waits up to wait_ms for what the server sends (less when a frame is due), then sends the
 * frames due and echoes the marks played. Several phones share one wait. */
void it_phones_step(it_phone *const *ps, size_t n, int wait_ms);
/* Runs the call for `ms`. */
void it_phone_run(it_phone *p, int ms);
/* Runs until `cond` holds (checked after each step) or timeout_ms: whether it held. */
bool it_phone_until(it_phone *p, bool (*cond)(const it_phone *p, void *data), void *data,
                    int timeout_ms);
/* Runs until the agent has spoken since the last say or key and its audio has played
 * out `quiet_ms` ago: whether it did within timeout_ms. */
bool it_phone_quiet(it_phone *p, int quiet_ms, int timeout_ms);
/* Whether the agent is talking: voice arrived and its audio has not played out. */
bool it_phone_talking(const it_phone *p);
/* Says a WAV (8 kHz mono) from the next frame on, then silence again. 0 or -1. */
int it_phone_say(it_phone *p, const char *wav);
/* Presses a key. */
int it_phone_key(it_phone *p, char digit);
/* Runs until the server ends the stream: whether it did within timeout_ms. */
bool it_phone_wait_end(it_phone *p, int timeout_ms);
/* Sends stop and waits for the server's close (unless it ended the stream itself). */
void it_phone_hangup(it_phone *p);
void it_phone_free(it_phone *p);

/* ---- a signed webhook receiver, on its own thread ---- */

#define IT_HOOK_BODY_MAX 65536

/* What the receiver answers: status, body (JSON or anything), after `delay_ms`. */
typedef struct it_hook_answer {
    int status;
    char body[4096];
    int delay_ms;
} it_hook_answer;

typedef struct it_hook it_hook;
/* Called on the receiver's thread for each request read: its path, its body (NUL-ended),
 * whether its X-Callstream-Signature is right for `secret` and its time current. */
typedef void (*it_hook_fn)(void *data, const char *path, const char *body, bool signed_ok,
                           it_hook_answer *out);

/* A receiver on a free loopback port (*port), checking signatures made with `secret`. */
it_hook *it_hook_start(const char *secret, it_hook_fn fn, void *data, int *port);
/* Requests it has read (counted before the answer). */
int it_hook_received(it_hook *h);
void it_hook_stop(it_hook *h);

/* ---- files ---- */

/* A file of the speech corpus (CS_CORPUS), e.g. "wav/jfk_inaugural_1961.wav". */
const char *it_corpus(const char *rel);
/* DATA_DIR/recordings/<sid>.wav (a static buffer). */
const char *it_recording(const it_server *s, const char *sid);
/* DATA_DIR/callstream.db (a static buffer). */
const char *it_db(const it_server *s);
/* One integer from a query on a SQLite file; -1 on error. */
long long it_sql(const char *db, const char *sql);
/* Runs statements on a SQLite file (as another process would); 0 or -1. */
int it_sql_exec(const char *db, const char *sql);
/* Channels and frames of a WAV, from its header and from its size. 0 or -1. */
int it_wav_info(const char *path, unsigned *channels, long *header_frames, long *size_frames);
/* The samples of a 16-bit WAV in memory (a file, or an answer's body): checks the header
 * (PCM, 16-bit, sizes that match the length) and points *pcm at the data. Frames, or -1. */
long it_wav_frames(const char *wav, size_t len, unsigned *channels, const int16_t **pcm);
/* Writes a mono 16-bit 8 kHz WAV at `path` for a caller taking turns: for each k, clip k
 * (any WAV, read as the simulator reads it; NULL: none) then gap_ms[k] of digital silence.
 * starts[k] (may be NULL) gets where clip k begins, in samples. 0 or -1. */
int it_wav_compose(const char *path, const char *const *clips, const unsigned *gap_ms, size_t n,
                   size_t *starts);

/* ---- the store ---- */

/* /health's status is `want` ("ok", "degraded"). */
bool it_health_is(int port, const char *want);
/* Records went to the spill file. */
bool it_store_spilled(int port);
/* Healthy again, both queues empty, and every spilled record replayed. */
bool it_store_caught_up(int port);

/* ---- a small disk ---- */

/* Mounts a tmpfs of `bytes` on `dir` (made if missing) in a mount namespace of this
 * process's own, so nothing stays mounted whatever happens to the test (exit and
 * SIGTERM/SIGINT unmount it too). One at a time. Needs root: a refusal is a failed
 * check, never a pass. Whether it is mounted. */
bool it_tmpfs(const char *dir, unsigned long long bytes);
void it_tmpfs_unmount(void);
/* Bytes free on the filesystem of `dir`. */
unsigned long long it_free_bytes(const char *dir);
/* Grows `path` until `dir` has about `left` bytes free (0: full). */
void it_fill_until(const char *dir, const char *path, unsigned long long left);

#endif
