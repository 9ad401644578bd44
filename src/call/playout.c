#include "call/playout.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

#define FRAMES_PER_MS 8
#define COMPACT_AT    (64u << 10) /* sent bytes kept in front of an utterance's queue */
#define MARKS_PER_UTT 4096        /* sentences of one utterance */

/* A stretch of an utterance's text and the audio that carries it: a word (heard once
 * its audio started) or a sentence without word timings (heard in proportion). */
typedef struct span {
    uint32_t t0, t1; /* text bytes */
    uint64_t a0, a1; /* audio bytes */
    bool word;
} span;

typedef struct mark_point {
    uint64_t at; /* after this many bytes of the utterance */
    uint32_t seq;
    enum cs_mark_kind kind;
} mark_point;

struct cs_utt {
    uint32_t id;
    bool ended;
    cs_buf audio; /* bytes from `base` on; unsent ones from `sent` */
    uint64_t base;
    uint64_t pushed, sent;       /* bytes, since the utterance began */
    uint64_t sentence_start;     /* `pushed` when the current sentence began */
    bool started;                /* a byte was sent */
    uint64_t start_pos, end_pos; /* timeline positions of the audio sent */
    uint64_t played_pos;         /* confirmed by mark echoes */
    mark_point *marks;
    uint32_t nmarks, marks_sent, cap_marks, sentences;
    cs_buf text;
    span *spans;
    uint32_t nspans, cap_spans;
};

void cs_playout_init(cs_playout *p, uint64_t max_pending_bytes)
{
    memset(p, 0, sizeof *p);
    p->max_pending = max_pending_bytes;
    cs_buf_init(&p->heard_text, CS_PLAYOUT_TEXT_MAX);
}

static void utt_free(cs_utt *u)
{
    cs_buf_free(&u->audio);
    cs_buf_free(&u->text);
    free(u->marks);
    free(u->spans);
    free(u);
}

void cs_playout_free(cs_playout *p)
{
    for (size_t i = 0; i < p->nutts; i++) utt_free(p->utts[i]);
    p->nutts = 0;
    p->pending = 0;
    cs_buf_free(&p->heard_text);
}

static cs_utt *find(const cs_playout *p, uint32_t id, size_t *at)
{
    for (size_t i = 0; i < p->nutts; i++) {
        if (p->utts[i]->id == id) {
            if (at) *at = i;
            return p->utts[i];
        }
    }
    return NULL;
}

/* An utterance a producer may still add to. */
static cs_utt *open_utt(const cs_playout *p, uint32_t id)
{
    cs_utt *u = id > p->cut_upto ? find(p, id, NULL) : NULL;
    return u && !u->ended ? u : NULL;
}

int cs_playout_begin(cs_playout *p, uint32_t *id)
{
    if (p->nutts == CS_PLAYOUT_UTTS_MAX) return CS_ELIMIT;
    cs_utt *u = calloc(1, sizeof *u);
    if (!u) return -ENOMEM;
    u->id = ++p->next_id;
    if (u->id == 0) u->id = p->next_id = p->cut_upto + 1; /* 2^32 utterances later */
    cs_buf_init(&u->audio, (size_t)p->max_pending + COMPACT_AT);
    cs_buf_init(&u->text, CS_PLAYOUT_TEXT_MAX);
    p->utts[p->nutts++] = u;
    *id = u->id;
    return 0;
}

int cs_playout_push(cs_playout *p, uint32_t id, const uint8_t *ulaw, size_t n)
{
    cs_utt *u = open_utt(p, id);
    if (!u) return CS_ECLOSED;
    if (n > p->max_pending - p->pending) return CS_EFULL;
    int rc = cs_buf_append(&u->audio, ulaw, n);
    if (rc < 0) return rc;
    u->pushed += n;
    p->pending += n;
    return 0;
}

static int add_mark(cs_utt *u, enum cs_mark_kind kind)
{
    if (u->nmarks == MARKS_PER_UTT) return CS_ELIMIT;
    if (u->nmarks == u->cap_marks) {
        uint32_t cap = u->cap_marks ? u->cap_marks * 2 : 4;
        mark_point *m = realloc(u->marks, cap * sizeof *m);
        if (!m) return -ENOMEM;
        u->marks = m;
        u->cap_marks = cap;
    }
    u->marks[u->nmarks++] =
        (mark_point){u->pushed, kind == CS_MARK_END ? u->sentences : ++u->sentences, kind};
    return 0;
}

static int add_span(cs_utt *u, span s)
{
    if (u->nspans == u->cap_spans) {
        uint32_t cap = u->cap_spans ? u->cap_spans * 2 : 16;
        span *sp = realloc(u->spans, cap * sizeof *sp);
        if (!sp) return -ENOMEM;
        u->spans = sp;
        u->cap_spans = cap;
    }
    u->spans[u->nspans++] = s;
    return 0;
}

/* Whether the word timings fit the sentence: inside its text, starts not going back. */
static bool words_ok(const cs_word *w, size_t nw, size_t len)
{
    for (size_t i = 0; i < nw; i++) {
        if (w[i].off > len || w[i].len > len - w[i].off) return false;
        if (i && w[i].start_ms < w[i - 1].start_ms) return false;
    }
    return nw > 0;
}

int cs_playout_sentence(cs_playout *p, uint32_t id, const char *text, size_t len,
                        const cs_word *words, size_t nwords)
{
    cs_utt *u = open_utt(p, id);
    if (!u) return CS_ECLOSED;
    size_t keep = u->text.len;
    /* Sentences join with a space. */
    if (len && u->text.len && u->text.data[u->text.len - 1] != ' ' && text[0] != ' ' &&
        cs_buf_putc(&u->text, ' ') < 0)
        return CS_ELIMIT;
    uint32_t t = (uint32_t)u->text.len;
    if (cs_buf_append(&u->text, text, len) < 0) {
        cs_buf_truncate(&u->text, keep);
        return CS_ELIMIT;
    }
    uint64_t a0 = u->sentence_start, a1 = u->pushed;
    int rc = 0;
    if (!words_ok(words, nwords, len) || u->nspans + nwords > CS_PLAYOUT_SPANS_MAX) {
        if (len) rc = add_span(u, (span){t, t + (uint32_t)len, a0, a1, false});
    } else {
        for (size_t i = 0; i < nwords && rc == 0; i++) {
            uint64_t w0 = a0 + (uint64_t)words[i].start_ms * FRAMES_PER_MS;
            uint64_t w1 =
                i + 1 < nwords ? a0 + (uint64_t)words[i + 1].start_ms * FRAMES_PER_MS : a1;
            if (w0 > a1) w0 = a1;
            if (w1 > a1) w1 = a1;
            rc = add_span(u,
                          (span){t + words[i].off, t + words[i].off + words[i].len, w0, w1, true});
        }
    }
    if (rc == 0) rc = add_mark(u, CS_MARK_SENTENCE);
    if (rc < 0) {
        cs_buf_truncate(&u->text, keep);
        return rc;
    }
    u->sentence_start = u->pushed;
    return 0;
}

int cs_playout_end(cs_playout *p, uint32_t id)
{
    cs_utt *u = open_utt(p, id);
    if (!u) return CS_ECLOSED;
    int rc = add_mark(u, CS_MARK_END);
    if (rc < 0) return rc;
    u->ended = true;
    return 0;
}

/* ---- the stream's side ---- */

/* The utterance being sent: the oldest with something left to send, or still open. */
static cs_utt *sending(const cs_playout *p)
{
    for (size_t i = 0; i < p->nutts; i++) {
        cs_utt *u = p->utts[i];
        if (u->sent < u->pushed || u->marks_sent < u->nmarks || !u->ended) return u;
    }
    return NULL;
}

bool cs_playout_mark_due(const cs_playout *p, cs_playout_mark *m)
{
    cs_utt *u = sending(p);
    if (!u || u->marks_sent == u->nmarks || u->marks[u->marks_sent].at > u->sent) return false;
    const mark_point *mp = &u->marks[u->marks_sent];
    *m = (cs_playout_mark){u->id, mp->seq, mp->kind};
    return true;
}

void cs_playout_mark_sent(cs_playout *p)
{
    cs_utt *u = sending(p);
    if (u && u->marks_sent < u->nmarks) u->marks_sent++;
}

size_t cs_playout_peek(cs_playout *p, const uint8_t **data, size_t max)
{
    cs_utt *u = sending(p);
    if (!u) return 0;
    uint64_t left = u->pushed - u->sent;
    if (u->marks_sent < u->nmarks) {
        uint64_t to_mark = u->marks[u->marks_sent].at - u->sent;
        if (to_mark < left) left = to_mark;
    }
    *data = (const uint8_t *)u->audio.data + (u->sent - u->base);
    return left < max ? (size_t)left : max;
}

void cs_playout_taken(cs_playout *p, size_t n, uint64_t pos)
{
    cs_utt *u = sending(p);
    if (!u || n == 0) return;
    if (!u->started) {
        u->started = true;
        u->start_pos = pos;
    }
    u->sent += n;
    u->end_pos = pos + n;
    p->pending -= n;
    uint64_t done = u->sent - u->base;
    if (done >= COMPACT_AT && done * 2 >= u->audio.len) {
        cs_buf_consume(&u->audio, (size_t)done);
        u->base = u->sent;
    }
}

uint64_t cs_playout_sent_end(const cs_playout *p)
{
    uint64_t end = 0;
    for (size_t i = 0; i < p->nutts; i++)
        if (p->utts[i]->started && p->utts[i]->end_pos > end) end = p->utts[i]->end_pos;
    return end;
}

/* ---- what was heard ---- */

/* Bytes of `u` heard by timeline position `now`. Audio is never placed before the time
 * it is sent, so whatever was sent to play after `now` lies in one piece at the end. */
static uint64_t heard_bytes(const cs_utt *u, uint64_t now)
{
    if (u->played_pos > now) now = u->played_pos;
    if (!u->started || now <= u->start_pos) return 0;
    if (now >= u->end_pos) return u->sent;
    return u->sent - (u->end_pos - now);
}

/* The end of the text heard after `h` bytes of audio. */
static uint32_t heard_text_end(const cs_utt *u, uint64_t h)
{
    bool all = h >= u->pushed;
    uint32_t end = all ? (uint32_t)u->text.len : 0;
    for (uint32_t i = 0; i < u->nspans && !all; i++) {
        const span *s = &u->spans[i];
        if (s->a1 <= h || (s->word && s->a0 < h)) {
            end = s->t1;
            continue;
        }
        if (!s->word && s->a0 < h) {
            /* In proportion, back to the end of a whole word. */
            uint32_t c =
                s->t0 + (uint32_t)((uint64_t)(s->t1 - s->t0) * (h - s->a0) / (s->a1 - s->a0));
            if (c < s->t1 && u->text.data[c] != ' ')
                while (c > s->t0 && u->text.data[c - 1] != ' ') c--;
            if (c > s->t0) end = c;
        }
        break;
    }
    while (end > 0 && u->text.data[end - 1] == ' ') end--;
    return end;
}

static void report_utt(cs_playout *p, cs_utt *u, uint64_t heard, bool cut,
                       void (*report)(void *, const cs_heard *), void *data)
{
    uint32_t end = heard_text_end(u, heard);
    cs_buf_reset(&p->heard_text);
    if (end) cs_buf_append(&p->heard_text, u->text.data, end);
    bool words = false;
    for (uint32_t i = 0; i < u->nspans && !words; i++) words = u->spans[i].word;
    cs_heard h = {
        .utt = u->id,
        .start_pos = u->started ? u->start_pos : 0,
        .heard_ms = heard / FRAMES_PER_MS,
        .total_ms = u->pushed / FRAMES_PER_MS,
        .text = p->heard_text.data ? p->heard_text.data : "",
        .text_len = p->heard_text.len,
        .full = u->text.data ? u->text.data : "",
        .full_len = u->text.len,
        .cut = cut,
        .words = words,
    };
    if (report) report(data, &h);
}

/* Takes utterance `i` out of the list (the caller frees it). */
static cs_utt *detach_at(cs_playout *p, size_t i)
{
    cs_utt *u = p->utts[i];
    p->pending -= u->pushed - u->sent;
    memmove(&p->utts[i], &p->utts[i + 1], (p->nutts - i - 1) * sizeof *p->utts);
    p->nutts--;
    return u;
}

static void remove_at(cs_playout *p, size_t i)
{
    utt_free(detach_at(p, i));
}

void cs_playout_played(cs_playout *p, uint32_t id, uint64_t pos)
{
    cs_utt *u = find(p, id, NULL);
    if (u && pos > u->played_pos) u->played_pos = pos;
}

void cs_playout_finish(cs_playout *p, uint32_t id, void (*report)(void *, const cs_heard *),
                       void *data)
{
    size_t i;
    cs_utt *u = find(p, id, &i);
    if (!u) return;
    report_utt(p, u, u->sent, u->sent < u->pushed, report, data);
    remove_at(p, i);
}

size_t cs_playout_expire(cs_playout *p, uint64_t now, uint64_t grace,
                         void (*report)(void *, const cs_heard *), void *data)
{
    size_t n = 0;
    while (p->nutts) {
        cs_utt *u = p->utts[0];
        bool all_out = u->ended && u->sent == u->pushed && u->marks_sent == u->nmarks;
        if (!all_out || (u->started && now < u->end_pos + grace)) break;
        cs_playout_finish(p, u->id, report, data);
        n++;
    }
    return n;
}

uint64_t cs_playout_cut(cs_playout *p, uint64_t now, void (*report)(void *, const cs_heard *),
                        void *data)
{
    uint64_t beyond = 0;
    while (p->nutts) {
        cs_utt *u = p->utts[0];
        uint64_t heard = heard_bytes(u, now);
        beyond += u->sent - heard;
        /* Out of the list before it is reported: what the report sets off (the agent
         * ending what it was saying, which may finish an utterance) cannot reach it. */
        detach_at(p, 0);
        report_utt(p, u, heard, heard < u->pushed, report, data);
        utt_free(u);
    }
    p->cut_upto = p->next_id;
    return beyond;
}
