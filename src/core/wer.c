#include "core/wer.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const small_numbers[] = {
    "zero",     "one",     "two",     "three",     "four",     "five",    "six",
    "seven",    "eight",   "nine",    "ten",       "eleven",   "twelve",  "thirteen",
    "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"};
static const char *const tens[] = {"",      "",      "twenty",  "thirty", "forty",
                                   "fifty", "sixty", "seventy", "eighty", "ninety"};

/* A bounded writer: once something does not fit, every later write fails too. */
typedef struct out_text {
    char *p;
    size_t len, cap;
    bool overflow;
} out_text;

static void put_char(out_text *o, char c)
{
    /* Spaces collapse here: never two in a row, never one at the start. */
    if (c == ' ' && (o->len == 0 || o->p[o->len - 1] == ' ')) return;
    if (o->len + 1 >= o->cap) {
        o->overflow = true;
        return;
    }
    o->p[o->len++] = c;
}

static void put_word(out_text *o, const char *w)
{
    put_char(o, ' ');
    while (*w) put_char(o, *w++);
    put_char(o, ' ');
}

static void put_digits(out_text *o, const char *d, size_t n)
{
    for (size_t i = 0; i < n; i++) put_word(o, small_numbers[d[i] - '0']);
}

static void put_below_100(out_text *o, int n)
{
    if (n < 20) {
        put_word(o, small_numbers[n]);
        return;
    }
    put_word(o, tens[n / 10]);
    if (n % 10) put_word(o, small_numbers[n % 10]);
}

/* The integer d[0..n) as spoken in the corpus: small numbers as numbers, round hundreds
 * and thousands as such ("500", "8500" → "eight five hundred"), anything else (extensions,
 * passwords) digit by digit. */
static void put_integer(out_text *o, const char *d, size_t n)
{
    if (n <= 2) {
        put_below_100(o, atoi(d) % 100);
    } else if (n == 4 && memcmp(d + 1, "000", 3) == 0) {
        put_digits(o, d, 1);
        put_word(o, "thousand");
    } else if (memcmp(d + n - 2, "00", 2) == 0) {
        put_digits(o, d, n - 2);
        put_word(o, "hundred");
    } else {
        put_digits(o, d, n);
    }
}

/* A number at s ("28", "28.8"); returns the characters it took. */
static size_t put_number(out_text *o, const char *s)
{
    size_t n = strspn(s, "0123456789");
    char intpart[8];
    if (n < sizeof intpart) {
        memcpy(intpart, s, n);
        intpart[n] = '\0';
        put_integer(o, intpart, n);
    } else {
        put_digits(o, s, n);
    }
    if (s[n] == '.' && isdigit((unsigned char)s[n + 1])) {
        size_t frac = strspn(s + n + 1, "0123456789");
        put_word(o, "point");
        put_digits(o, s + n + 1, frac);
        n += 1 + frac;
    }
    return n;
}

int cs_wer_normalize(const char *text, char *out, size_t cap)
{
    out_text o = {out, 0, cap, cap == 0};
    for (size_t i = 0; text[i] && !o.overflow;) {
        unsigned char c = (unsigned char)text[i];
        bool letter_before = i > 0 && isalpha((unsigned char)text[i - 1]);
        bool letter_after = isalpha((unsigned char)text[i + 1]);
        if (isdigit(c)) {
            i += put_number(&o, text + i);
            continue;
        }
        if (isalpha(c))
            put_char(&o, (char)tolower(c));
        else if (c == '\'' && letter_before && letter_after)
            put_char(&o, '\'');
        else if (c == '.' && letter_before && letter_after)
            put_word(&o, "dot"); /* www.asterisk.org */
        else
            put_char(&o, ' ');
        i++;
    }
    if (o.overflow) return -1;
    if (o.len > 0 && out[o.len - 1] == ' ') o.len--;
    out[o.len] = '\0';
    return (int)o.len;
}

/* Splits normalised text in place into words; -1 if there are too many. */
static int split_words(char *text, const char **words)
{
    int n = 0;
    char *save = NULL;
    for (char *w = strtok_r(text, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        if (n == CS_WER_WORDS_MAX) return -1;
        words[n++] = w;
    }
    return n;
}

/* Levenshtein distance over words, one row at a time. */
static size_t edit_distance(const char **ref, int nref, const char **hyp, int nhyp)
{
    static size_t prev[CS_WER_WORDS_MAX + 1], cur[CS_WER_WORDS_MAX + 1];
    for (int j = 0; j <= nhyp; j++) prev[j] = (size_t)j;
    for (int i = 1; i <= nref; i++) {
        cur[0] = (size_t)i;
        for (int j = 1; j <= nhyp; j++) {
            size_t sub = prev[j - 1] + (strcmp(ref[i - 1], hyp[j - 1]) != 0);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, sizeof(size_t) * (size_t)(nhyp + 1));
    }
    return prev[nhyp];
}

int cs_wer_add(cs_wer_count *c, const char *ref, const char *hyp)
{
    static char ref_text[CS_WER_TEXT_MAX], hyp_text[CS_WER_TEXT_MAX];
    static const char *ref_words[CS_WER_WORDS_MAX], *hyp_words[CS_WER_WORDS_MAX];
    if (cs_wer_normalize(ref, ref_text, sizeof ref_text) < 0 ||
        cs_wer_normalize(hyp, hyp_text, sizeof hyp_text) < 0)
        return -1;
    int nref = split_words(ref_text, ref_words), nhyp = split_words(hyp_text, hyp_words);
    if (nref < 0 || nhyp < 0) return -1;
    c->errors += edit_distance(ref_words, nref, hyp_words, nhyp);
    c->words += (size_t)nref;
    return 0;
}

double cs_wer_rate(const cs_wer_count *c)
{
    return c->words ? (double)c->errors / (double)c->words : 0.0;
}
