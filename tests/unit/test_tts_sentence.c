#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tts/sentence.h"

#define MAX_OUT 64

/* The sentences of a whole text, as NUL-terminated copies; checks on the way that each
 * is a slice of the text after the one before. Returns how many. */
static size_t split_all(const char *text, char out[][CS_SENTENCE_MAX + 1])
{
    size_t len = strlen(text), at = 0, n = 0, last_end = 0;
    while (at < len) {
        cs_span s;
        size_t used = cs_sentence_next(text + at, len - at, true, &s);
        assert_true(used > 0);
        assert_true(used <= len - at);
        assert_true(s.off + s.len <= used);
        if (s.len) {
            assert_true(at + s.off >= last_end);
            assert_true(s.len <= CS_SENTENCE_MAX);
            assert_true(n < MAX_OUT);
            memcpy(out[n], text + at + s.off, s.len);
            out[n][s.len] = '\0';
            last_end = at + s.off + s.len;
            n++;
        }
        at += used;
    }
    return n;
}

typedef struct split_case {
    const char *text;
    const char *want[8]; /* NULL-terminated */
} split_case;

static const split_case cases[] = {
    {"Hello there. How are you? I'm fine!", {"Hello there.", "How are you?", "I'm fine!"}},
    {"Dr. Smith lives at 3.5 Main St. in town. Next.",
     {"Dr. Smith lives at 3.5 Main St. in town.", "Next."}},
    {"Use e.g. this one; or that: fine", {"Use e.g. this one;", "or that:", "fine"}},
    {"It costs 5. Then stop.", {"It costs 5.", "Then stop."}},
    {"1. Buy milk\n2. Call mom", {"1. Buy milk", "2. Call mom"}},
    {"He said \"stop.\" Then he left.", {"He said \"stop.\"", "Then he left."}},
    {"Wait... what?! Really", {"Wait...", "what?!", "Really"}},
    {"Meet at 10:30 today. Visit example.com now.",
     {"Meet at 10:30 today.", "Visit example.com now."}},
    {"J. R. R. Tolkien wrote it (mostly.) The end.",
     {"J. R. R. Tolkien wrote it (mostly.)", "The end."}},
    {"\xC3\x87"
     "a va? Tr\xC3\xA8s bien\xE2\x80\xA6 merci.",
     {"\xC3\x87"
      "a va?",
      "Tr\xC3\xA8s bien\xE2\x80\xA6", "merci."}},
    {"  line one\r\n\r\n  line two  \n", {"line one", "line two"}},
    {"No end mark at all", {"No end mark at all"}},
    {"  \n\n ... \n -- \xE2\x80\x9C\xE2\x80\x9D !", {NULL}},
    {"Done. ... Next one.", {"Done.", "Next one."}},
};

static void splits_whole_texts(void **state)
{
    (void)state;
    char out[MAX_OUT][CS_SENTENCE_MAX + 1];
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        size_t n = split_all(cases[c].text, out);
        size_t want = 0;
        while (cases[c].want[want]) want++;
        if (n != want) fail_msg("case %zu: %zu sentences, want %zu", c, n, want);
        for (size_t i = 0; i < n; i++)
            if (strcmp(out[i], cases[c].want[i]) != 0)
                fail_msg("case %zu sentence %zu: '%s', want '%s'", c, i, out[i], cases[c].want[i]);
    }
}

/* Without `final`, a text whose end might still change waits for more. */
static void waits_for_more_text(void **state)
{
    (void)state;
    static const char *const undecided[] = {"It costs 3.", "Hello",       "Dr.",
                                            "Why?",        "Hi \xE2\x80", ""};
    for (size_t i = 0; i < sizeof undecided / sizeof *undecided; i++) {
        cs_span s;
        assert_int_equal(cs_sentence_next(undecided[i], strlen(undecided[i]), false, &s), 0);
    }
    cs_span s;
    const char *t = "Why? Because";
    assert_int_equal(cs_sentence_next(t, strlen(t), false, &s), 4);
    assert_int_equal(s.off, 0);
    assert_int_equal(s.len, 4);
    t = "a line\nmore";
    assert_int_equal(cs_sentence_next(t, strlen(t), false, &s), 7);
    assert_int_equal(s.len, 6);
}

/* A sentence with no end within CS_SENTENCE_MAX is cut at its last comma, else its last
 * space, else at the limit on a character boundary. */
static void cuts_long_sentences(void **state)
{
    (void)state;
    char text[4 * CS_SENTENCE_MAX], out[MAX_OUT][CS_SENTENCE_MAX + 1];
    /* Commas every 50 bytes: each piece ends with a comma. */
    text[0] = '\0';
    while (strlen(text) < 3 * CS_SENTENCE_MAX)
        strcat(text, "this clause has some words in it and a comma here, ");
    strcat(text, "end.");
    size_t n = split_all(text, out);
    assert_true(n >= 4);
    for (size_t i = 0; i + 1 < n; i++) {
        assert_true(strlen(out[i]) <= CS_SENTENCE_MAX);
        assert_true(strlen(out[i]) > CS_SENTENCE_MAX - 52);
        assert_int_equal(out[i][strlen(out[i]) - 1], ',');
    }
    /* No comma: cut at a space. */
    text[0] = '\0';
    while (strlen(text) < 2 * CS_SENTENCE_MAX + 10) strcat(text, "word ");
    n = split_all(text, out);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_true(strlen(out[i]) <= CS_SENTENCE_MAX);
        assert_int_equal(out[i][strlen(out[i]) - 1], 'd');
    }
    /* No space: cut at the limit, not inside a 3-byte character. */
    strcpy(text, "a");
    while (strlen(text) < 2 * CS_SENTENCE_MAX) strcat(text, "\xE2\x82\xAC"); /* € */
    n = split_all(text, out);
    assert_int_equal(n, 3);
    assert_int_equal(strlen(out[0]), CS_SENTENCE_MAX - 2); /* 1 + 79 × 3 */
    assert_int_equal(strlen(out[1]), CS_SENTENCE_MAX);
    /* A mark past the limit does not make an over-long sentence. */
    memset(text, 'x', CS_SENTENCE_MAX + 5);
    strcpy(text + CS_SENTENCE_MAX + 5, ". Next.");
    n = split_all(text, out);
    assert_int_equal(n, 3);
    assert_int_equal(strlen(out[0]), CS_SENTENCE_MAX);
    assert_string_equal(out[1], "xxxxx.");
}

/* Text fed in pieces of any size splits exactly as the whole text does. */
static void pieces_split_like_the_whole(void **state)
{
    (void)state;
    char long_text[3 * CS_SENTENCE_MAX + 64] = "";
    while (strlen(long_text) < 2 * CS_SENTENCE_MAX + 10) strcat(long_text, "on and on, ");
    strcat(long_text, "done... ok");
    uint64_t seed = 7;
    char whole[MAX_OUT][CS_SENTENCE_MAX + 1];
    for (size_t c = 0; c <= sizeof cases / sizeof *cases; c++) {
        const char *text = c < sizeof cases / sizeof *cases ? cases[c].text : long_text;
        size_t nwhole = split_all(text, whole), len = strlen(text);
        for (int round = 0; round < 50; round++) {
            cs_splitter sp;
            cs_splitter_init(&sp);
            size_t got = 0, at = 0;
            const char *s;
            size_t n;
            while (at < len) {
                size_t piece = 1 + tu_rand_below(&seed, 12);
                if (piece > len - at) piece = len - at;
                assert_int_equal(cs_splitter_feed(&sp, text + at, piece), 0);
                at += piece;
                while (cs_splitter_next(&sp, false, &s, &n)) {
                    assert_true(got < nwhole);
                    if (n != strlen(whole[got]) || memcmp(s, whole[got], n) != 0)
                        fail_msg("case %zu: '%.*s', want '%s'", c, (int)n, s, whole[got]);
                    got++;
                }
            }
            while (cs_splitter_next(&sp, true, &s, &n)) {
                assert_true(got < nwhole);
                assert_memory_equal(s, whole[got], n);
                got++;
            }
            assert_int_equal(got, nwhole);
            assert_int_equal(sp.pending.len, 0);
            cs_splitter_free(&sp);
        }
    }
}

static void splitter_is_bounded(void **state)
{
    (void)state;
    cs_splitter sp;
    cs_splitter_init(&sp);
    char *big = malloc(CS_SPLITTER_MAX + 1);
    assert_non_null(big);
    memset(big, 'a', CS_SPLITTER_MAX + 1);
    assert_int_equal(cs_splitter_feed(&sp, big, CS_SPLITTER_MAX + 1), -EMSGSIZE);
    assert_int_equal(sp.pending.len, 0);
    /* Taken out as it comes, any amount passes: long runs are cut. */
    size_t total = 0;
    const char *s;
    size_t n;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(cs_splitter_feed(&sp, big, CS_SPLITTER_MAX / 2), 0);
        while (cs_splitter_next(&sp, false, &s, &n)) total += n;
    }
    while (cs_splitter_next(&sp, true, &s, &n)) total += n;
    assert_int_equal(total, 2 * (size_t)CS_SPLITTER_MAX);
    cs_splitter_free(&sp);
    cs_splitter_free(&sp); /* idempotent */
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(splits_whole_texts),  cmocka_unit_test(waits_for_more_text),
        cmocka_unit_test(cuts_long_sentences), cmocka_unit_test(pieces_split_like_the_whole),
        cmocka_unit_test(splitter_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
