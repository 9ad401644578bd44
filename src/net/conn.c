#include "net/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "core/err.h"
#include "core/log.h"

enum {
    F_CLOSING = 1u << 0,      /* cs_conn_close was called */
    F_GRACEFUL = 1u << 1,     /* closing once the output is flushed */
    F_DIRTY = 1u << 2,        /* in the net's dirty list */
    F_WRITING = 1u << 3,      /* a uv_write is in flight */
    F_PAUSED = 1u << 4,       /* reading stopped by the owner */
    F_CLIENT = 1u << 5,       /* we connected out */
    F_HANDSHAKING = 1u << 6,  /* TLS handshake not finished */
    F_HANDLE_CLOSED = 1u << 7, /* uv_close was called */
    F_INPUT_PENDING = 1u << 8, /* kept input to present again (after resume) */
    F_DELIVERING = 1u << 9,   /* inside on_data */
    F_READING = 1u << 10,     /* uv_read_start is in effect */
    F_RESOLVING = 1u << 11,   /* a name lookup is running */
    F_CONNECTING = 1u << 12,  /* client: TCP connect not finished; output waits */
    F_BACKPRESSURE = 1u << 13, /* reading stopped until the peer takes its output */
    F_WANT_DRAIN = 1u << 14,   /* the owner waits for the output to drain to drain_mark */
    F_DRAINED = 1u << 15,      /* ... and it has: on_drain runs in the check phase */
};
#define F_STOPPED (F_PAUSED | F_BACKPRESSURE) /* input is not wanted now */

struct cs_net {
    uv_loop_t *loop;
    uv_check_t check; /* flushes dirty connections once per loop turn */
    uv_idle_t idle;   /* keeps the poll from blocking while something is dirty */
    uv_timer_t sweep; /* idle timeouts and overdue graceful closes */
    SSL_CTX *tls_server;
    SSL_CTX *tls_client;
    cs_conn *dirty;
    cs_conn *all;
    size_t count;
    size_t output_cap; /* 0: none */
    cs_net_stats stats;
    char rbuf[CS_CONN_READ_BUF];  /* raw bytes of the read being handled */
    char plain[CS_CONN_READ_BUF]; /* TLS: plaintext of that read */
};

static void flush(cs_conn *c);
static void really_close(cs_conn *c);
static void tls_input(cs_conn *c, const char *data, size_t len);
static void start_reading(cs_conn *c);
static void stop_reading(cs_conn *c);

static uint64_t now_ms(const cs_net *net)
{
    return uv_now(net->loop);
}

static void log_tls_errors(const char *what, const cs_conn *c)
{
    unsigned long e;
    char msg[256];
    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, msg, sizeof msg);
        cs_warn("tls: %s peer=%s: %s", what, c ? c->peer_ip : "-", msg);
    }
}

/* ---- dirty list: flushed in the check phase ---- */

static void idle_noop(uv_idle_t *h)
{
    (void)h;
}

static void mark_dirty(cs_conn *c)
{
    if (c->flags & (F_DIRTY | F_HANDLE_CLOSED)) return;
    c->flags |= F_DIRTY;
    c->dirty_next = c->net->dirty;
    c->net->dirty = c;
    if (!uv_is_active((uv_handle_t *)&c->net->idle)) uv_idle_start(&c->net->idle, idle_noop);
}

static void unlink_dirty(cs_conn *c)
{
    if (!(c->flags & F_DIRTY)) return;
    for (cs_conn **p = &c->net->dirty; *p; p = &(*p)->dirty_next) {
        if (*p == c) {
            *p = c->dirty_next;
            break;
        }
    }
    c->flags &= ~F_DIRTY;
}

static void deliver_kept(cs_conn *c);

static void on_check(uv_check_t *h)
{
    cs_net *net = h->data;
    while (net->dirty) {
        cs_conn *list = net->dirty;
        net->dirty = NULL;
        while (list) {
            cs_conn *c = list;
            list = c->dirty_next;
            c->flags &= ~F_DIRTY;
            if (c->flags & F_HANDLE_CLOSED) continue;
            if (c->flags & F_INPUT_PENDING) {
                c->flags &= ~F_INPUT_PENDING;
                deliver_kept(c);
                start_reading(c);
            }
            if (c->flags & F_DRAINED) {
                c->flags &= ~F_DRAINED;
                if (!(c->flags & F_CLOSING) && c->ops->on_drain) c->ops->on_drain(c);
            }
            flush(c);
        }
    }
    uv_idle_stop(&net->idle);
}

/* ---- input ---- */

/* Presents data[0..len) to the owner until it stops taking bytes. Returns bytes used. */
static size_t present(cs_conn *c, char *data, size_t len)
{
    size_t off = 0;
    c->flags |= F_DELIVERING;
    while (off < len && !(c->flags & (F_CLOSING | F_STOPPED))) {
        const cs_conn_ops *ops = c->ops;
        ssize_t k = ops->on_data(c, data + off, len - off);
        if (k < 0) {
            cs_conn_close(c, (int)k, true);
            break;
        }
        off += (size_t)k;
        if (k == 0 && c->ops == ops) break;
    }
    c->flags &= ~F_DELIVERING;
    return off;
}

/* Input the owner saw and left is bounded by max_input; input it was not shown because
 * reading stopped meanwhile (a request waiting for its answer) is the rest of one read,
 * kept whatever its size. */
static size_t kept_max(const cs_conn *c)
{
    if ((c->flags & F_STOPPED) && c->max_input < CS_CONN_READ_BUF) return CS_CONN_READ_BUF;
    return c->max_input;
}

/* Bytes from a loop-wide buffer: what the owner leaves is kept in c->in. */
static void deliver_transient(cs_conn *c, char *data, size_t len)
{
    size_t used = present(c, data, len);
    if (used == len || (c->flags & F_CLOSING)) return;
    c->in.max = kept_max(c);
    if (cs_buf_append(&c->in, data + used, len - used) < 0) {
        c->net->stats.input_overflow++;
        cs_conn_close(c, CS_ELIMIT, true);
    }
}

/* Bytes already kept in c->in. */
static void deliver_kept(cs_conn *c)
{
    if (c->in.len) {
        size_t used = present(c, c->in.data, c->in.len);
        if (c->flags & F_CLOSING)
            cs_buf_reset(&c->in);
        else
            cs_buf_consume(&c->in, used);
    }
    if (c->ssl && !(c->flags & (F_CLOSING | F_STOPPED))) tls_input(c, NULL, 0);
}

/* Reading may go on unless something else still stops it. Kept input is presented
 * first, from the check phase (never inside the caller's call); reading restarts after. */
static void input_wanted(cs_conn *c)
{
    if (c->flags & (F_CLOSING | F_STOPPED)) return;
    if ((c->in.len || c->ssl) && !(c->flags & F_DELIVERING)) {
        c->flags |= F_INPUT_PENDING;
        mark_dirty(c);
        return;
    }
    start_reading(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    cs_conn *c = h->data;
    if (c->ssl || c->in.len == 0) {
        *buf = uv_buf_init(c->net->rbuf, sizeof c->net->rbuf);
        return;
    }
    /* Plain TCP with kept input: read in after it, so the owner sees one run of bytes. */
    c->in.max = c->max_input;
    size_t room = c->in.max > c->in.len ? c->in.max - c->in.len : 0;
    if (room > CS_CONN_READ_BUF) room = CS_CONN_READ_BUF;
    char *p = room ? cs_buf_space(&c->in, room) : NULL;
    *buf = uv_buf_init(p, p ? (unsigned)room : 0);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    cs_conn *c = s->data;
    if (nread < 0) {
        int err = 0;
        if (nread == UV_ENOBUFS) {
            c->net->stats.input_overflow++;
            err = CS_ELIMIT;
        } else if (nread != UV_EOF) {
            err = (int)nread;
        }
        /* After EOF the peer may still read what we owe it (an HTTP answer). */
        cs_conn_close(c, err, err == 0 || err == CS_ELIMIT);
        return;
    }
    if (nread == 0) return;
    c->net->stats.bytes_in += (uint64_t)nread;
    c->last_read_ms = now_ms(c->net);
    if (c->ssl) {
        tls_input(c, buf->base, (size_t)nread);
    } else if (buf->base == c->net->rbuf) {
        deliver_transient(c, buf->base, (size_t)nread);
    } else {
        cs_buf_commit(&c->in, (size_t)nread);
        deliver_kept(c);
    }
}

static void start_reading(cs_conn *c)
{
    if (c->flags & (F_READING | F_CLOSING | F_STOPPED)) return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->flags |= F_READING;
}

static void stop_reading(cs_conn *c)
{
    if (!(c->flags & F_READING)) return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->flags &= ~F_READING;
}

/* ---- output accounting ---- */

/* After any change to a connection's output: the net's total, how fast the peer reads,
 * back-pressure, and the owner's wait for a drain. */
static void account(cs_conn *c)
{
    cs_net *net = c->net;
    size_t pending = (c->flags & F_HANDLE_CLOSED) ? 0 : cs_conn_pending(c) + c->held;
    if ((c->flags & F_WANT_DRAIN) && cs_conn_pending(c) <= c->drain_mark) {
        c->flags = (c->flags & ~F_WANT_DRAIN) | F_DRAINED; /* told from the check phase */
        mark_dirty(c);
    }
    /* Output only shrinks when the kernel takes it (or it is dropped at a close). */
    if (pending < c->accounted || pending == 0) c->out_moved_ms = now_ms(net);
    net->stats.buffered = net->stats.buffered - c->accounted + pending;
    c->accounted = pending;
    if (!c->output_high || (c->flags & F_HANDLE_CLOSED)) return;
    if (!(c->flags & F_BACKPRESSURE) && pending > c->output_high) {
        c->flags |= F_BACKPRESSURE;
        net->stats.output_paused++;
        stop_reading(c);
    } else if ((c->flags & F_BACKPRESSURE) && pending <= c->output_high / 2) {
        c->flags &= ~F_BACKPRESSURE;
        c->last_read_ms = now_ms(net); /* idle time counts from here, not from the stop */
        input_wanted(c);
    }
}

/* The connection to close first for the output cap: the lowest class, then the reader
 * that has kept its output waiting longest. */
static cs_conn *slowest_reader(const cs_net *net)
{
    cs_conn *best = NULL;
    for (cs_conn *c = net->all; c; c = c->next) {
        if (!c->accounted || (c->flags & F_HANDLE_CLOSED)) continue;
        if (!best || c->cls < best->cls ||
            (c->cls == best->cls && c->out_moved_ms < best->out_moved_ms))
            best = c;
    }
    return best;
}

/* Room for `n` more bytes under the net's cap, made by closing the slowest readers. */
static bool make_room(cs_net *net, size_t n)
{
    if (!net->output_cap) return true;
    if (n > net->output_cap) return false; /* closing every reader would not make room */
    unsigned closed[CS_CONN_CLASS_COUNT] = {0};
    bool room = true;
    while (net->stats.buffered + n > net->output_cap) {
        cs_conn *v = slowest_reader(net);
        if (!v) {
            room = false;
            break;
        }
        closed[v->cls]++;
        net->stats.cap_closed[v->cls]++;
        cs_conn_close(v, CS_ELIMIT, false); /* drops its output: see really_close */
    }
    if (closed[CS_CONN_CLASS_LISTENER] || closed[CS_CONN_CLASS_DEFAULT])
        cs_warn("net: buffered output reached its cap (%zu bytes): closed the slowest readers, "
                "%u listen-in and %u other connection(s)",
                net->output_cap, closed[CS_CONN_CLASS_LISTENER], closed[CS_CONN_CLASS_DEFAULT]);
    return room;
}

/* ---- TLS ---- */

/* Moves what OpenSSL wants to send into c->wire. */
static void tls_drain(cs_conn *c)
{
    BIO *wbio = SSL_get_wbio(c->ssl);
    size_t pending;
    while ((pending = BIO_ctrl_pending(wbio)) > 0) {
        char *p = cs_buf_space(&c->wire, pending);
        if (!p) {
            c->net->stats.output_overflow++;
            cs_conn_close(c, -ENOBUFS, false);
            return;
        }
        int n = BIO_read(wbio, p, (int)pending);
        if (n <= 0) break;
        cs_buf_commit(&c->wire, (size_t)n);
    }
    account(c);
    if (c->wire.len) mark_dirty(c);
}

static void tls_fail(cs_conn *c, const char *what)
{
    c->net->stats.tls_failures++;
    log_tls_errors(what, c);
    cs_conn_close(c, CS_ETLS, false);
}

static void tls_input(cs_conn *c, const char *data, size_t len)
{
    if (len && BIO_write(SSL_get_rbio(c->ssl), data, (int)len) != (int)len) {
        tls_fail(c, "buffering input");
        return;
    }
    if (c->flags & F_HANDSHAKING) {
        int r = SSL_do_handshake(c->ssl);
        tls_drain(c);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) tls_fail(c, "handshake");
            return;
        }
        c->flags &= ~F_HANDSHAKING;
        if (c->out.len) mark_dirty(c); /* written before the handshake ended */
        if ((c->flags & F_CLIENT) && c->ops->on_connect) c->ops->on_connect(c, 0);
    }
    while (!(c->flags & (F_CLOSING | F_STOPPED))) {
        char *dst;
        size_t room;
        if (c->in.len == 0) {
            dst = c->net->plain;
            room = sizeof c->net->plain;
        } else {
            c->in.max = c->max_input;
            room = c->in.max > c->in.len ? c->in.max - c->in.len : 0;
            if (room > CS_CONN_READ_BUF) room = CS_CONN_READ_BUF;
            dst = room ? cs_buf_space(&c->in, room) : NULL;
            if (!dst) {
                c->net->stats.input_overflow++;
                cs_conn_close(c, CS_ELIMIT, true);
                return;
            }
        }
        int n = SSL_read(c->ssl, dst, (int)room);
        if (n <= 0) {
            int e = SSL_get_error(c->ssl, n);
            tls_drain(c);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
            if (e == SSL_ERROR_ZERO_RETURN)
                cs_conn_close(c, 0, true);
            else
                tls_fail(c, "read");
            return;
        }
        if (dst == c->net->plain) {
            deliver_transient(c, dst, (size_t)n);
        } else {
            cs_buf_commit(&c->in, (size_t)n);
            size_t used = present(c, c->in.data, c->in.len);
            if (c->flags & F_CLOSING)
                cs_buf_reset(&c->in);
            else
                cs_buf_consume(&c->in, used);
        }
    }
}

static int tls_attach(cs_conn *c, SSL_CTX *ctx, bool client, const char *sni)
{
    SSL *ssl = SSL_new(ctx);
    BIO *rbio = BIO_new(BIO_s_mem());
    BIO *wbio = BIO_new(BIO_s_mem());
    if (!ssl || !rbio || !wbio) {
        SSL_free(ssl);
        BIO_free(rbio);
        BIO_free(wbio);
        log_tls_errors("setup", c);
        return CS_ETLS;
    }
    SSL_set_bio(ssl, rbio, wbio);
    if (client) {
        SSL_set_connect_state(ssl);
        if (sni && *sni) {
            bool verify = SSL_CTX_get_verify_mode(ctx) != SSL_VERIFY_NONE;
            unsigned char addr[16];
            /* An address is checked against the certificate's IP names and is never sent
             * as SNI (RFC 6066 §3). */
            if (inet_pton(AF_INET, sni, addr) == 1 || inet_pton(AF_INET6, sni, addr) == 1) {
                if (verify) X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), sni);
            } else {
                SSL_set_tlsext_host_name(ssl, sni);
                if (verify) SSL_set1_host(ssl, sni);
            }
        }
    } else {
        SSL_set_accept_state(ssl);
    }
    c->ssl = ssl;
    c->flags |= F_HANDSHAKING;
    return 0;
}

/* ---- output ---- */

static void on_write(uv_write_t *req, int status)
{
    cs_conn *c = req->data;
    c->flags &= ~F_WRITING;
    if (status == UV_ECANCELED) return;
    if (status < 0) {
        cs_conn_close(c, status, false);
        return;
    }
    c->net->stats.bytes_out += c->inflight.len;
    cs_buf_reset(&c->inflight);
    account(c);
    if (c->out.len || c->wire.len || (c->flags & F_GRACEFUL))
        mark_dirty(c);
}

/* TLS: moves the plaintext output through OpenSSL into c->wire. */
static int tls_encrypt(cs_conn *c)
{
    if (!(c->flags & F_HANDSHAKING) && c->out.len) {
        int n = SSL_write(c->ssl, c->out.data, (int)c->out.len);
        if (n <= 0) {
            tls_fail(c, "write");
            return CS_ETLS;
        }
        cs_buf_consume(&c->out, (size_t)n);
    }
    tls_drain(c);
    return 0;
}

static void flush(cs_conn *c)
{
    if (c->flags & (F_WRITING | F_HANDLE_CLOSED | F_CONNECTING)) return;
    cs_buf *src = &c->out;
    if (c->ssl) {
        if (tls_encrypt(c) < 0) return;
        src = &c->wire;
    }
    if (src->len) {
        uv_buf_t b = uv_buf_init(src->data, (unsigned)src->len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        c->net->stats.writes++;
        if (n == UV_EAGAIN) n = 0;
        if (n < 0) {
            cs_conn_close(c, n, false);
            return;
        }
        c->net->stats.bytes_out += (uint64_t)n;
        if ((size_t)n == src->len) {
            cs_buf_reset(src);
            account(c);
        } else {
            /* The kernel took part: hand the rest to uv_write, keeping both buffers so the
             * steady state does not allocate. */
            cs_buf_consume(src, (size_t)n);
            cs_buf tmp = c->inflight;
            c->inflight = *src;
            *src = tmp;
            b = uv_buf_init(c->inflight.data, (unsigned)c->inflight.len);
            c->wreq.data = c;
            int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
            if (rc < 0) {
                cs_conn_close(c, rc, false);
                return;
            }
            c->flags |= F_WRITING;
            account(c);
            return;
        }
    }
    if ((c->flags & F_GRACEFUL) && cs_conn_pending(c) == 0) really_close(c);
}

size_t cs_conn_pending(const cs_conn *c)
{
    return c->out.len + c->wire.len + c->inflight.len;
}

char *cs_conn_reserve(cs_conn *c, size_t n)
{
    if (c->flags & F_CLOSING) return NULL;
    if (cs_conn_pending(c) + n > CS_CONN_MAX_OUTPUT || !make_room(c->net, n)) {
        c->net->stats.output_overflow++;
        return NULL;
    }
    if (c->flags & F_CLOSING) return NULL; /* it was the slowest reader itself */
    return cs_buf_space(&c->out, n);
}

void cs_conn_commit(cs_conn *c, size_t n)
{
    cs_buf_commit(&c->out, n);
    account(c);
    mark_dirty(c);
}

int cs_conn_write(cs_conn *c, const void *data, size_t len)
{
    if (c->flags & F_CLOSING) return CS_ECLOSED;
    char *p = cs_conn_reserve(c, len);
    if (!p) return -ENOBUFS;
    memcpy(p, data, len);
    cs_conn_commit(c, len);
    return 0;
}

int cs_conn_set_held(cs_conn *c, size_t bytes)
{
    if (c->flags & F_CLOSING) return CS_ECLOSED;
    if (bytes > c->held && !make_room(c->net, bytes - c->held)) {
        c->net->stats.output_overflow++;
        return -ENOBUFS;
    }
    if (c->flags & F_CLOSING) return CS_ECLOSED; /* it was the slowest reader itself */
    c->held = bytes;
    account(c);
    return 0;
}

void cs_conn_want_drain(cs_conn *c, size_t mark)
{
    if (c->flags & F_CLOSING) return;
    c->drain_mark = mark;
    c->flags |= F_WANT_DRAIN;
    account(c); /* already drained: on_drain still waits for the check phase */
}

/* ---- lifecycle ---- */

static cs_conn *conn_new(cs_net *net, const cs_conn_ops *ops, void *data)
{
    cs_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->net = net;
    c->ops = ops;
    c->data = data;
    c->max_input = CS_CONN_MAX_INPUT_DEFAULT;
    cs_buf_init(&c->in, c->max_input);
    cs_buf_init(&c->out, CS_CONN_MAX_OUTPUT);
    cs_buf_init(&c->wire, 2 * CS_CONN_MAX_OUTPUT);
    cs_buf_init(&c->inflight, 2 * CS_CONN_MAX_OUTPUT);
    c->cls = CS_CONN_CLASS_DEFAULT;
    c->tcp.data = c;
    c->last_read_ms = c->out_moved_ms = now_ms(net);
    c->next = net->all;
    if (net->all) net->all->prev = c;
    net->all = c;
    net->count++;
    net->stats.open++;
    return c;
}

static void on_closed(uv_handle_t *h)
{
    cs_conn *c = h->data;
    cs_net *net = c->net;
    unlink_dirty(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        net->all = c->next;
    if (c->next) c->next->prev = c->prev;
    net->count--;
    net->stats.open--;
    if (c->ops && c->ops->on_close) c->ops->on_close(c, c->close_err);
    if (c->untrack) c->untrack(c);
    cs_buf_free(&c->in);
    cs_buf_free(&c->out);
    cs_buf_free(&c->wire);
    cs_buf_free(&c->inflight);
    SSL_free(c->ssl);
    free(c);
}

static void really_close(cs_conn *c)
{
    if (c->flags & F_HANDLE_CLOSED) return;
    /* Output not sent by now never will be: it leaves the net's total at once (a write in
     * flight keeps its buffer until libuv cancels it, later in this loop turn). */
    cs_buf_reset(&c->out);
    cs_buf_reset(&c->wire);
    c->held = 0;
    c->flags &= ~(F_WANT_DRAIN | F_DRAINED);
    if (c->flags & F_RESOLVING) { /* the lookup's callback finishes the close */
        account(c);
        return;
    }
    c->flags |= F_HANDLE_CLOSED | F_CLOSING;
    account(c);
    stop_reading(c);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

void cs_conn_close(cs_conn *c, int err, bool graceful)
{
    if (c->flags & F_CLOSING) {
        if (!graceful) really_close(c);
        return;
    }
    c->flags |= F_CLOSING;
    c->close_err = err;
    c->closing_since_ms = now_ms(c->net);
    stop_reading(c);
    if (graceful && (c->flags & F_HANDSHAKING) == 0 && !(c->flags & F_RESOLVING)) {
        if (c->ssl) { /* what is pending goes out before the close_notify */
            if (tls_encrypt(c) < 0) return;
            SSL_shutdown(c->ssl);
            tls_drain(c);
        }
        c->flags |= F_GRACEFUL;
        mark_dirty(c);
        return;
    }
    really_close(c);
}

bool cs_conn_closing(const cs_conn *c)
{
    return (c->flags & F_CLOSING) != 0;
}

int cs_conn_set_send_buffer(cs_conn *c, int bytes)
{
    int value = bytes;
    return uv_send_buffer_size((uv_handle_t *)&c->tcp, &value);
}

bool cs_conn_is_tls(const cs_conn *c)
{
    return c->ssl != NULL;
}

bool cs_conn_peer_gone(const cs_conn *c)
{
    uv_os_fd_t fd;
    if ((c->flags & F_CLOSING) || uv_fileno((const uv_handle_t *)&c->tcp, &fd) < 0) return true;
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

void cs_conn_pause(cs_conn *c)
{
    c->flags |= F_PAUSED;
    stop_reading(c);
}

void cs_conn_resume(cs_conn *c)
{
    if (!(c->flags & F_PAUSED)) return;
    c->flags &= ~F_PAUSED;
    input_wanted(c);
}

void cs_conn_set_output_high(cs_conn *c, size_t bytes)
{
    c->output_high = bytes;
    if (!bytes && (c->flags & F_BACKPRESSURE)) {
        c->flags &= ~F_BACKPRESSURE;
        input_wanted(c);
    }
    account(c);
}

static void peer_name(cs_conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0) {
        strcpy(c->peer_ip, "?");
        return;
    }
    if (ss.ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer_ip, sizeof c->peer_ip);
    else
        uv_ip4_name((struct sockaddr_in *)&ss, c->peer_ip, sizeof c->peer_ip);
    /* IPv4 clients of a dual-stack socket appear as ::ffff:a.b.c.d */
    if (strncmp(c->peer_ip, "::ffff:", 7) == 0 && strchr(c->peer_ip + 7, '.'))
        memmove(c->peer_ip, c->peer_ip + 7, strlen(c->peer_ip + 7) + 1);
}

int cs_conn_accept(cs_net *net, int fd, bool tls, const cs_conn_ops *ops, void *data, cs_conn **out)
{
    if (tls && !net->tls_server) {
        close(fd);
        return CS_ETLS;
    }
    cs_conn *c = conn_new(net, ops, data);
    if (!c) {
        close(fd);
        return -ENOMEM;
    }
    int rc = uv_tcp_init(net->loop, &c->tcp);
    if (rc == 0) rc = uv_tcp_open(&c->tcp, fd);
    if (rc < 0) close(fd); /* not the handle's */
    if (rc == 0 && tls) rc = tls_attach(c, net->tls_server, false, NULL);
    if (rc < 0) {
        c->ops = NULL; /* the owner never saw it */
        c->close_err = rc;
        really_close(c);
        return rc;
    }
    net->stats.accepted++;
    uv_tcp_nodelay(&c->tcp, 1);
    peer_name(c);
    start_reading(c);
    *out = c;
    return 0;
}

static void on_connected(uv_connect_t *req, int status)
{
    cs_conn *c = req->data;
    c->flags &= ~F_CONNECTING;
    if (c->flags & F_CLOSING) return;
    if (status < 0) {
        if (c->ops->on_connect) c->ops->on_connect(c, status);
        cs_conn_close(c, status, false);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    peer_name(c);
    start_reading(c);
    if (c->ssl) {
        SSL_do_handshake(c->ssl); /* produces the ClientHello */
        tls_drain(c);
    } else if (c->ops->on_connect) {
        c->ops->on_connect(c, 0);
    }
    if (c->out.len) mark_dirty(c);
}

static int start_connect(cs_conn *c, const struct sockaddr *addr)
{
    c->creq.data = c;
    return uv_tcp_connect(&c->creq, &c->tcp, addr, on_connected);
}

typedef struct resolve_req {
    uv_getaddrinfo_t req;
    cs_conn *c;
    uint16_t port;
} resolve_req;

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    resolve_req *r = req->data;
    cs_conn *c = r->c;
    c->flags &= ~F_RESOLVING;
    int rc = status;
    if (rc == 0 && !(c->flags & F_CLOSING)) {
        struct sockaddr_storage ss;
        memcpy(&ss, res->ai_addr, res->ai_addrlen);
        if (ss.ss_family == AF_INET)
            ((struct sockaddr_in *)&ss)->sin_port = htons(r->port);
        else
            ((struct sockaddr_in6 *)&ss)->sin6_port = htons(r->port);
        rc = start_connect(c, (struct sockaddr *)&ss);
    }
    uv_freeaddrinfo(res);
    free(r);
    if (c->flags & F_CLOSING) {
        really_close(c);
        return;
    }
    if (rc < 0) {
        if (c->ops->on_connect) c->ops->on_connect(c, rc);
        cs_conn_close(c, rc, false);
    }
}

int cs_conn_connect(cs_net *net, const char *host, uint16_t port, bool tls, const char *sni,
                    const cs_conn_ops *ops, void *data, cs_conn **out)
{
    if (tls && !net->tls_client) {
        int rc = cs_net_tls_client(net, NULL, true);
        if (rc < 0) return rc;
    }
    cs_conn *c = conn_new(net, ops, data);
    if (!c) return -ENOMEM;
    c->flags |= F_CLIENT | F_CONNECTING;
    snprintf(c->peer_ip, sizeof c->peer_ip, "%s", host);
    int rc = uv_tcp_init(net->loop, &c->tcp);
    if (rc == 0 && tls) rc = tls_attach(c, net->tls_client, true, sni ? sni : host);
    if (rc == 0) {
        struct sockaddr_storage ss;
        if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) == 0 ||
            uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) == 0) {
            rc = start_connect(c, (struct sockaddr *)&ss);
        } else {
            /* Name lookups run on libuv's thread pool, never on the loop. */
            resolve_req *r = calloc(1, sizeof *r);
            rc = r ? 0 : -ENOMEM;
            if (r) {
                r->c = c;
                r->port = port;
                r->req.data = r;
                struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
                rc = uv_getaddrinfo(net->loop, &r->req, on_resolved, host, NULL, &hints);
                if (rc == 0)
                    c->flags |= F_RESOLVING;
                else
                    free(r);
            }
        }
    }
    if (rc < 0) {
        c->ops = NULL;
        c->close_err = rc;
        really_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* ---- the net ---- */

/* The last sign of life: a read, or, while output waits for the peer (a large answer
 * going out, or reading stopped until it drains), the kernel taking some. */
static uint64_t last_active_ms(const cs_conn *c)
{
    if (c->accounted && c->out_moved_ms > c->last_read_ms) return c->out_moved_ms;
    return c->last_read_ms;
}

static void on_sweep(uv_timer_t *t)
{
    cs_net *net = t->data;
    uint64_t now = now_ms(net);
    for (cs_conn *c = net->all, *next; c; c = next) {
        next = c->next;
        if (c->flags & F_HANDLE_CLOSED) continue;
        if (c->flags & F_CLOSING) {
            if (now - c->closing_since_ms >= CS_CONN_CLOSE_LINGER_MS) really_close(c);
        } else if (c->idle_timeout_ms && now - last_active_ms(c) >= c->idle_timeout_ms) {
            net->stats.idle_closed++;
            cs_conn_close(c, -ETIMEDOUT, true);
        } else if (c->deadline_ms && now >= c->deadline_ms) {
            c->deadline_ms = 0;
            if (c->ops->on_deadline)
                c->ops->on_deadline(c);
            else
                cs_conn_close(c, -ETIMEDOUT, true);
        }
    }
}

int cs_net_new(cs_net **out, uv_loop_t *loop)
{
    cs_net *net = calloc(1, sizeof *net);
    if (!net) return -ENOMEM;
    net->loop = loop;
    uv_check_init(loop, &net->check);
    uv_idle_init(loop, &net->idle);
    uv_timer_init(loop, &net->sweep);
    net->check.data = net->idle.data = net->sweep.data = net;
    uv_check_start(&net->check, on_check);
    uv_timer_start(&net->sweep, on_sweep, CS_CONN_SWEEP_MS, CS_CONN_SWEEP_MS);
    /* The sweep alone must not keep the loop alive. */
    uv_unref((uv_handle_t *)&net->sweep);
    uv_unref((uv_handle_t *)&net->check);
    *out = net;
    return 0;
}

static void net_handle_closed(uv_handle_t *h)
{
    (void)h;
}

void cs_net_free(cs_net *net)
{
    if (!net) return;
    uv_close((uv_handle_t *)&net->check, net_handle_closed);
    uv_close((uv_handle_t *)&net->idle, net_handle_closed);
    uv_close((uv_handle_t *)&net->sweep, net_handle_closed);
    SSL_CTX_free(net->tls_server);
    SSL_CTX_free(net->tls_client);
    /* The handles live inside net: run the loop once so their close callbacks happen
     * before the memory goes. */
    uv_run(net->loop, UV_RUN_NOWAIT);
    free(net);
}

uv_loop_t *cs_net_loop(cs_net *net)
{
    return net->loop;
}

const cs_net_stats *cs_net_stats_get(const cs_net *net)
{
    return &net->stats;
}

size_t cs_net_count(const cs_net *net)
{
    return net->count;
}

void cs_net_set_output_cap(cs_net *net, size_t bytes)
{
    net->output_cap = bytes;
}

void cs_net_close_all(cs_net *net, bool graceful)
{
    for (cs_conn *c = net->all, *next; c; c = next) {
        next = c->next;
        cs_conn_close(c, 0, graceful);
    }
}

int cs_net_tls_server(cs_net *net, const char *cert_file, const char *key_file)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) goto fail;
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) goto fail;
    if (SSL_CTX_check_private_key(ctx) != 1) goto fail;
    SSL_CTX_free(net->tls_server);
    net->tls_server = ctx;
    return 0;
fail:
    cs_error("tls: cannot use certificate %s and key %s", cert_file, key_file);
    log_tls_errors("server setup", NULL);
    SSL_CTX_free(ctx);
    return CS_ETLS;
}

int cs_net_tls_client(cs_net *net, const char *ca_file, bool verify)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_RELEASE_BUFFERS);
    if (verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                         : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) goto fail;
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    SSL_CTX_free(net->tls_client);
    net->tls_client = ctx;
    return 0;
fail:
    cs_error("tls: cannot set up client verification%s%s", ca_file ? " with " : "",
             ca_file ? ca_file : "");
    log_tls_errors("client setup", NULL);
    SSL_CTX_free(ctx);
    return CS_ETLS;
}
