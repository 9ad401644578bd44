/* The simulated caller's side of a conversation: where the speech of a clip is (frame
 * energy), Twilio's playback buffer with what of the agent's audio played and when, and
 * the turn taking that speaks each clip once the agent has stopped talking (or into its
 * answer, to barge in). Pure: no I/O, the clock is given. See tools/sim/README.md. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audio/g711.h"
#include "core/err.h"
#include "sim/sim_int.h"

#define NS_PER_BYTE  125000ull /* 8 kHz μ-law */
#define FRAME_NS     (SIM_FRAME_MS * 1000000ull)
#define SILENCE_DB   (-100.0)
#define NOISE_PCTILE 0.05

/* ---- speech in a clip ---- */

double sim_energy_db(const uint8_t *ulaw, size_t n)
{
    if (!n) return SILENCE_DB;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        double v = cs_ulaw_to_pcm[ulaw[i]];
        sum += v * v;
    }
    double ms = sum / (double)n / (32768.0 * 32768.0);
    return ms > 1e-10 ? 10 * log10(ms) : SILENCE_DB;
}

int sim_speech_find(const uint8_t *ulaw, size_t nframes, sim_speech *out)
{
    *out = (sim_speech){.onset = nframes ? nframes - 1 : 0, .end = nframes};
    if (!nframes) return 0;
    double *db = malloc(2 * nframes * sizeof *db);
    if (!db) return -ENOMEM;
    double *sorted = db + nframes;
    for (size_t k = 0; k < nframes; k++)
        db[k] = sim_energy_db(ulaw + k * SIM_FRAME_BYTES, SIM_FRAME_BYTES);
    memcpy(sorted, db, nframes * sizeof *db);
    qsort(sorted, nframes, sizeof *sorted, sim_cmp_double);
    double noise = sorted[(size_t)(NOISE_PCTILE * (double)(nframes - 1))];
    double thr = fmax(fmax(noise + SIM_SPEECH_MARGIN_DB, sorted[nframes - 1] - SIM_SPEECH_RANGE_DB),
                      SIM_VOICE_FLOOR_DB);
    out->threshold_db = thr;
    /* Stretches of voiced frames, silences of up to SIM_SPEECH_GAP_FRAMES bridged; the
     * first and the last long enough to be speech bound it. */
    size_t start = 0, end = 0;
    bool open = false;
    for (size_t k = 0; k <= nframes; k++) {
        if (k < nframes && db[k] < thr) continue;
        if (k < nframes && open && k - end <= SIM_SPEECH_GAP_FRAMES) {
            end = k + 1;
            continue;
        }
        if (open && end - start >= SIM_SPEECH_MIN_FRAMES) { /* a stretch of speech ends */
            if (!out->found) out->onset = start;
            out->found = true;
            out->end = end;
        }
        open = true;
        start = k;
        end = k + 1;
    }
    free(db);
    return 0;
}

/* ---- Twilio's playback buffer ---- */

void sim_playback_advance(sim_playback *p, uint64_t now)
{
    while (p->n && p->played_to < now) {
        sim_seg *sg = &p->segs[p->head];
        uint64_t from = sg->start > p->played_to ? sg->start : p->played_to;
        uint64_t to = sg->end < now ? sg->end : now;
        if (to > from) {
            p->heard += to - from;
            if (sg->voiced) {
                p->voiced += to - from;
                p->heard_voice_end = to;
            }
        }
        if (sg->end > now) break;
        p->head = (p->head + 1) % SIM_PLAY_SEGS_MAX;
        p->n--;
    }
    if (now > p->played_to) p->played_to = now;
}

uint64_t sim_playback_add(sim_playback *p, uint64_t now, size_t bytes, bool voiced)
{
    sim_playback_advance(p, now);
    uint64_t start = p->end > now ? p->end : now;
    uint64_t end = start + bytes * NS_PER_BYTE;
    /* What is queued has not played yet, so it runs without a gap up to p->end. */
    sim_seg *last = p->n ? &p->segs[(p->head + p->n - 1) % SIM_PLAY_SEGS_MAX] : NULL;
    if (last && (last->voiced == voiced || p->n == SIM_PLAY_SEGS_MAX)) {
        if (last->voiced != voiced) p->merged++; /* the stretch's share of voice blurs */
        last->end = end;
        last->voiced |= voiced;
    } else {
        p->segs[(p->head + p->n++) % SIM_PLAY_SEGS_MAX] = (sim_seg){start, end, voiced};
    }
    p->end = end;
    if (voiced) p->voiced_end = end;
    return start;
}

void sim_playback_clear(sim_playback *p, uint64_t now)
{
    sim_playback_advance(p, now);
    p->n = 0;
    if (p->end > now) p->end = now;
    if (p->voiced_end > now) p->voiced_end = p->heard_voice_end;
}

/* ---- turns ---- */

void sim_turns_init(sim_turns *t, const sim_turn_opts *o, sim_playback *play, sim_turn *turns,
                    uint64_t t0)
{
    *t = (sim_turns){.o = o, .play = play, .turns = turns, .t0 = t0};
}

/* Where the audio of a frame sent at `now` began. */
static uint64_t before(uint64_t now)
{
    return now > FRAME_NS ? now - FRAME_NS : 0;
}

static sim_turn *current(sim_turns *t)
{
    return t->started ? &t->turns[t->started - 1] : NULL;
}

/* Whether to speak the next clip (or, after the last, to end) in the slot at `now`, and
 * whether that cuts into the agent's answer. The rules hold for the clip's audio, which
 * starts a frame before the slot. */
static bool next_due(const sim_turns *t, uint64_t now, bool *barge)
{
    const sim_turn_opts *o = t->o;
    const sim_turn *cur = t->started ? &t->turns[t->started - 1] : NULL;
    uint64_t at = before(now);
    bool more = t->started < o->nclips;
    bool heard = cur ? cur->answered : t->spoke;      /* the agent has spoken to this turn */
    uint64_t began = cur ? cur->answer : t->spoke_at; /* when that began to play */
    *barge = false;
    if (heard) {
        if (o->barge && more && at >= began + o->barge_ns) {
            *barge = true;
            return true;
        }
        return at >= t->play->voiced_end + o->gap_ns;
    }
    if (!cur) return at >= t->t0 + o->first_after_ns;
    return at >= cur->end + o->answer_timeout_ns;
}

/* The turn in progress ends at `now`: what of the agent was heard in it. */
static void close_turn(sim_turns *t, uint64_t now)
{
    sim_turn *cur = current(t);
    if (!cur) return;
    sim_playback_advance(t->play, now);
    cur->heard = t->play->heard - cur->heard_at_start;
}

bool sim_turns_frame(sim_turns *t, uint64_t now, uint8_t frame[SIM_FRAME_BYTES])
{
    if (t->done) return false;
    sim_playback_advance(t->play, now);
    bool barge;
    if (!t->speaking && next_due(t, now, &barge)) {
        close_turn(t, now);
        if (t->started == t->o->nclips) {
            t->done = true;
            return false;
        }
        sim_turn *nt = &t->turns[t->started];
        *nt = (sim_turn){.spoken = true,
                         .clip = (unsigned)t->started,
                         .start = before(now),
                         .barge = barge,
                         .heard_at_start = t->play->heard};
        t->started++;
        t->speaking = true;
        t->pos = 0;
    }
    if (!t->speaking) {
        memset(frame, CS_ULAW_SILENCE, SIM_FRAME_BYTES);
        return true;
    }
    sim_turn *cur = current(t);
    const sim_clip *clip = &t->o->clips[cur->clip];
    if (t->pos == clip->speech.onset) {
        cur->onset = clip->speech.found ? before(now) : now;
        cur->began = true;
        cur->voiced_at_onset = t->play->voiced;
    }
    if (t->pos + 1 == clip->speech.end) {
        cur->end = now;
        cur->ended = true;
        cur->overlap = t->play->voiced - cur->voiced_at_onset;
    }
    memcpy(frame, clip->ulaw + t->pos * SIM_FRAME_BYTES, SIM_FRAME_BYTES);
    if (++t->pos == clip->frames) t->speaking = false;
    return true;
}

uint64_t sim_turns_media(sim_turns *t, uint64_t now, const uint8_t *ulaw, size_t n)
{
    bool voiced = sim_energy_db(ulaw, n) >= SIM_VOICE_FLOOR_DB;
    uint64_t start = sim_playback_add(t->play, now, n, voiced);
    if (!voiced) return start;
    sim_turn *cur = current(t);
    if (!cur && !t->spoke) {
        t->spoke = true;
        t->spoke_at = start;
    } else if (cur && cur->ended && !cur->answered) {
        cur->answered = true;
        cur->answer = start;
    }
    return start;
}

void sim_turns_clear(sim_turns *t, uint64_t now)
{
    sim_playback_clear(t->play, now);
    sim_turn *cur = current(t);
    if (!cur) {
        if (t->spoke && t->spoke_at > now) t->spoke = false; /* never played */
        return;
    }
    if (!cur->cleared) {
        cur->cleared = true;
        cur->clear = now;
    }
    if (cur->answered && cur->answer > now) cur->answered = false; /* never played */
}

void sim_turns_finish(sim_turns *t, uint64_t now)
{
    if (t->done) return;
    close_turn(t, now);
    t->done = true;
}
