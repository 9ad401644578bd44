/* Sentence boundaries for speech (see sentence.h for the rules). Bytes are UTF-8; only
 * ASCII and a few common punctuation characters matter to the rules, everything else is
 * part of a word. */
#include "tts/sentence.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

/* Words that end with a dot without ending the sentence ("Dr. Smith"). Kept short on
 * purpose: "etc." "Inc." "No." end sentences at least as often as they go on. */
static const char *const abbreviations[] = {"mr", "mrs", "ms", "dr", "prof",   "sr",   "jr",
                                            "st", "mt",  "vs", "cf", "approx", "dept", "fig"};

/* Bytes of a sentence-ending mark at t[i]: . ! ? ; : or "…" (U+2026); 0 if none. */
static size_t mark_len(const char *t, size_t i, size_t len)
{
    if (strchr(".!?;:", t[i]) && t[i]) return 1;
    if (i + 3 <= len && memcmp(t + i, "\xE2\x80\xA6", 3) == 0) return 3;
    return 0;
}

/* Bytes of a closing quote or bracket at t[i]; 0 if none. */
static size_t closer_len(const char *t, size_t i, size_t len)
{
    if (strchr("\"')]}", t[i]) && t[i]) return 1;
    if (i + 3 <= len && (memcmp(t + i, "\xE2\x80\x9D", 3) == 0 || /* ” */
                         memcmp(t + i, "\xE2\x80\x99", 3) == 0))  /* ’ */
        return 3;
    if (i + 2 <= len && memcmp(t + i, "\xC2\xBB", 2) == 0) return 2; /* » */
    return 0;
}

/* Whether the dot at t[dot] belongs to the word before it rather than ending the
 * sentence that began at `start`: an abbreviation, an initial, a dotted abbreviation
 * ("e.g", "U.S"), or a list's number at the start ("1."). */
static bool dot_in_word(const char *t, size_t start, size_t dot)
{
    size_t w = dot;
    while (w > start && !cs_sentence_space((unsigned char)t[w - 1])) w--;
    while (w < dot && strchr("\"'([{", t[w])) w++;
    size_t n = dot - w;
    if (n == 0) return false;
    if (n == 1 && isalpha((unsigned char)t[w])) return true;
    if (memchr(t + w, '.', n)) return true;
    bool digits = true;
    for (size_t i = w; i < dot; i++) digits = digits && isdigit((unsigned char)t[i]);
    if (digits) return w == start;
    for (size_t i = 0; i < sizeof abbreviations / sizeof *abbreviations; i++)
        if (strlen(abbreviations[i]) == n && strncasecmp(t + w, abbreviations[i], n) == 0)
            return true;
    return false;
}

/* Whether t[off, off + n) has something to say: a letter or digit, or a non-ASCII
 * character other than punctuation (U+0080–U+00BF, U+2000–U+207F). */
static bool speakable(const char *t, size_t off, size_t n)
{
    for (size_t i = off; i < off + n;) {
        unsigned char c = (unsigned char)t[i];
        if (c < 0x80) {
            if (isalnum(c)) return true;
            i++;
        } else if (c == 0xC2 && i + 1 < off + n) {
            i += 2;
        } else if (c == 0xE2 && i + 2 < off + n &&
                   ((unsigned char)t[i + 1] == 0x80 || (unsigned char)t[i + 1] == 0x81)) {
            i += 3;
        } else {
            return true;
        }
    }
    return false;
}

size_t cs_sentence_next(const char *t, size_t len, bool final, cs_span *s)
{
    size_t start = 0;
    while (start < len && cs_sentence_space((unsigned char)t[start])) start++;
    *s = (cs_span){start, 0};
    if (start == len) return len; /* spaces only: used up, nothing to say */

    size_t end, used, comma = 0, space = 0; /* comma, space: where a long one may be cut */
    size_t i = start;
    for (;;) {
        if (i - start >= CS_SENTENCE_MAX) { /* no end in sight: cut (the same, final or not) */
            end = comma > start ? comma : space > start ? space : start + CS_SENTENCE_MAX;
            while (end > start + 1 && ((unsigned char)t[end] & 0xC0) == 0x80) end--;
            used = end;
            break;
        }
        if (i == len) {
            if (!final) return 0;
            end = used = len;
            break;
        }
        if (t[i] == '\n') {
            end = i;
            used = i + 1;
            break;
        }
        size_t m = mark_len(t, i, len);
        if (m == 0) {
            if (t[i] == ',') comma = i + 1;
            if (cs_sentence_space((unsigned char)t[i])) space = i;
            i++;
            continue;
        }
        /* A run of marks and closers ("?!", "...", ".\")"), then a space or the end. */
        size_t j = i + m, k;
        while (j < len && ((k = mark_len(t, j, len)) || (k = closer_len(t, j, len)))) j += k;
        bool fits = j - start <= CS_SENTENCE_MAX;
        if (fits && j == len && !final) return 0; /* "3." may be "3.5" once more comes */
        if (fits && (j == len || cs_sentence_space((unsigned char)t[j])) &&
            !(t[i] == '.' && j == i + 1 && dot_in_word(t, start, i))) {
            end = used = j;
            break;
        }
        i = j;
    }
    while (end > start && cs_sentence_space((unsigned char)t[end - 1])) end--;
    if (speakable(t, start, end - start)) s->len = end - start;
    return used;
}

void cs_splitter_init(cs_splitter *sp)
{
    cs_buf_init(&sp->pending, CS_SPLITTER_MAX);
    sp->taken = 0;
}

void cs_splitter_free(cs_splitter *sp)
{
    cs_buf_free(&sp->pending);
    sp->taken = 0;
}

/* Drops what was given out already. */
static void compact(cs_splitter *sp)
{
    if (sp->taken == 0) return;
    cs_buf_consume(&sp->pending, sp->taken);
    sp->taken = 0;
}

int cs_splitter_feed(cs_splitter *sp, const char *text, size_t len)
{
    compact(sp);
    return cs_buf_append(&sp->pending, text, len);
}

bool cs_splitter_next(cs_splitter *sp, bool flush, const char **text, size_t *len)
{
    compact(sp);
    for (;;) {
        const char *base = sp->pending.data ? sp->pending.data + sp->taken : "";
        cs_span s;
        size_t used = cs_sentence_next(base, sp->pending.len - sp->taken, flush, &s);
        if (used == 0) {
            if (flush) cs_splitter_free(sp);
            return false;
        }
        sp->taken += used;
        if (s.len) {
            *text = base + s.off;
            *len = s.len;
            return true;
        }
    }
}
