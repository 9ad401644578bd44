/* Deterministic mutation fuzzing of the WebSocket reader: valid frame streams are damaged
 * in seeded random ways and fed whole, in random pieces and byte by byte, for both roles.
 * The reader must keep its invariants (checked in ws_feed.h) and report the same events
 * however the bytes are split. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "net/ws.h"
#include "ws_feed.h"

#define ITERATIONS 200000
#define MAX_STREAM 4096

#define MEDIA                                                                                      \
    "{\"event\":\"media\",\"sequenceNumber\":\"3\",\"media\":{\"track\":\"inbound\","              \
    "\"chunk\":\"2\",\"timestamp\":\"40\",\"payload\":\"fn5+fn5+fn5+fn5+fn5+fn5+fn5+fn5+\"},"      \
    "\"streamSid\":\"MZ18ad3ab5a668481ce02b83e7395059f0\"}"

static const wsf_frame seeds[][6] = {
    {{0x81, WSF_S(MEDIA)}, {0x81, WSF_S(MEDIA)}},
    {{0x81, WSF_S("Hello")}, {0x89, WSF_S("ping")}, {0x82, WSF_S("\0\1\2\3")}},
    {{0x01, WSF_S("Hel")}, {0x8a, WSF_S("")}, {0x00, WSF_S("l")}, {0x80, WSF_S("o")}},
    {{0x01, WSF_S("\xf0\x9f")}, {0x80, WSF_S("\x98\x80 \xce\xba\xe1\xbd\xb9")}},
    {{0x88, WSF_S("\003\350bye")}, {0x88, WSF_S("")}},
    {{0x82, NULL, 300}, {0x81, WSF_S("after")}},
    {{0x02, NULL, 20}, {0x89, WSF_S("p")}, {0x00, NULL, 20}, {0x80, NULL, 5}},
    {{0x82, NULL, 126}, {0x81, NULL, 0}, {0x8a, NULL, 125}},
    {{0x81, WSF_S("x"), WSF_LEN16}, {0x82, WSF_S("y"), WSF_LEN64}},
};
#define NSEEDS (sizeof seeds / sizeof *seeds)

static uint8_t rand_byte(uint64_t *rng)
{
    return (uint8_t)(wsf_rand(rng) >> 24);
}

static size_t rand_below(uint64_t *rng, size_t n)
{
    return n ? (size_t)(wsf_rand(rng) >> 11) % n : 0;
}

/* Inserts n bytes at `at` (room permitting); returns the new length. */
static size_t insert(uint8_t *s, size_t len, size_t at, const uint8_t *src, size_t n)
{
    if (n > MAX_STREAM - len) n = MAX_STREAM - len;
    memmove(s + at + n, s + at, len - at);
    memmove(s + at, src, n);
    return len + n;
}

/* One random damage to s[0..len); returns the new length. */
static size_t mutate(uint8_t *s, size_t len, uint64_t *rng, const cs_buf *other)
{
    static const uint8_t interesting[] = {0x00, 0x01, 0x08, 0x7d, 0x7e, 0x7f, 0x80, 0x81,
                                          0x88, 0x89, 0xc0, 0xe0, 0xed, 0xf4, 0xfe, 0xff};
    size_t at = rand_below(rng, len);
    size_t n = 1 + rand_below(rng, 16);
    uint8_t tmp[16];
    switch (rand_below(rng, 8)) {
    case 0:
        if (len) s[at] ^= (uint8_t)(1u << rand_below(rng, 8));
        return len;
    case 1:
        if (len) s[at] = rand_byte(rng);
        return len;
    case 2:
        if (len) s[at] = interesting[rand_below(rng, sizeof interesting)];
        return len;
    case 3:
        for (size_t i = 0; i < n; i++) tmp[i] = rand_byte(rng);
        return insert(s, len, at, tmp, n);
    case 4:
        if (n > len - at) n = len - at;
        memmove(s + at, s + at + n, len - at - n);
        return len - n;
    case 5: /* repeat a piece of the stream elsewhere */
        if (n > len - at) n = len - at;
        memcpy(tmp, s + at, n);
        return insert(s, len, rand_below(rng, len + 1), tmp, n);
    case 6:
        return rand_below(rng, len + 1);
    default: { /* splice in a piece of another stream */
        size_t from = rand_below(rng, other->len);
        size_t k = 1 + rand_below(rng, 64);
        if (k > other->len - from) k = other->len - from;
        return insert(s, len, at, (const uint8_t *)other->data + from, k);
    }
    }
}

static char *transcript(enum cs_ws_role role, size_t max, const uint8_t *s, size_t len,
                        uint64_t split)
{
    cs_buf out = CS_BUF_INIT(1 << 16);
    wsf_run(&out, role, max, s, len, split, true);
    return out.len ? cs_buf_detach(&out, NULL) : strdup("");
}

static void mutated_streams(void **state)
{
    (void)state;
    static const size_t maxes[] = {0, 8, 64, 1024, 65536, 65536};
    cs_buf built[2][NSEEDS];
    for (int role = 0; role < 2; role++)
        for (size_t i = 0; i < NSEEDS; i++) {
            cs_buf_init(&built[role][i], MAX_STREAM);
            wsf_build_all(&built[role][i], (enum cs_ws_role)role, seeds[i]);
        }

    uint64_t rng = 0x5eed;
    size_t with_message = 0;
    uint8_t s[MAX_STREAM];
    for (uint64_t it = 0; it < ITERATIONS; it++) {
        enum cs_ws_role role = (enum cs_ws_role)(wsf_rand(&rng) & 1);
        /* mostly streams meant for this role, so mutations get past the masking check */
        int built_for = rand_below(&rng, 10) ? (int)role : !role;
        const cs_buf *seed = &built[built_for][rand_below(&rng, NSEEDS)];
        size_t len = seed->len;
        memcpy(s, seed->data, len);
        for (size_t m = 1 + rand_below(&rng, 3); m > 0; m--)
            len = mutate(s, len, &rng, &built[built_for][rand_below(&rng, NSEEDS)]);
        size_t max = maxes[rand_below(&rng, sizeof maxes / sizeof *maxes)];

        char *whole = transcript(role, max, s, len, WSF_WHOLE);
        char *split = transcript(role, max, s, len, it + 2);
        if (strcmp(whole, split) != 0)
            fail_msg("iteration %llu: whole \"%s\" vs split \"%s\"", (unsigned long long)it, whole,
                     split);
        if (it % 8 == 0) {
            char *bytes = transcript(role, max, s, len, WSF_BYTES);
            if (strcmp(whole, bytes) != 0)
                fail_msg("iteration %llu: whole \"%s\" vs bytes \"%s\"", (unsigned long long)it,
                         whole, bytes);
            free(bytes);
        }
        with_message += strstr(whole, "text(") || strstr(whole, "binary(");
        free(whole);
        free(split);
    }
    /* the mutations leave enough streams readable for the deep paths to be reached */
    assert_true(with_message > ITERATIONS / 10);
    for (int role = 0; role < 2; role++)
        for (size_t i = 0; i < NSEEDS; i++) cs_buf_free(&built[role][i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mutated_streams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
