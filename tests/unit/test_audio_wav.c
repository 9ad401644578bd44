#include "testutil.h"

#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/g711.h"
#include "audio/resample.h"
#include "audio/wav.h"
#include "core/buf.h"
#include "core/err.h"

#define WAV_MAX_BYTES (1 << 16) /* every WAV this test builds fits */

static char tmpdir[] = "/tmp/cs-test-wav-XXXXXX";

static const char *tmp_path(const char *name)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    return path;
}

static int make_tmpdir(void **state)
{
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int remove_tmpdir(void **state)
{
    (void)state;
    return nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

static unsigned get16(const uint8_t *p)
{
    return (unsigned)p[0] | (unsigned)p[1] << 8;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)get16(p) | (uint32_t)get16(p + 2) << 16;
}

/* ---- building WAV files byte by byte, independently of wav.c ---- */

static void add(cs_buf *b, const void *p, size_t n)
{
    assert_int_equal(cs_buf_append(b, p, n), 0);
}

static void add16(cs_buf *b, unsigned v)
{
    uint8_t p[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    add(b, p, 2);
}

static void add32(cs_buf *b, uint32_t v)
{
    add16(b, v & 0xFFFF);
    add16(b, v >> 16);
}

static void begin_wav(cs_buf *b)
{
    cs_buf_init(b, WAV_MAX_BYTES);
    add(b, "RIFF\0\0\0\0WAVE", 12);
}

/* A chunk with its pad byte when the size is odd. */
static void add_chunk(cs_buf *b, const char *id, const void *body, uint32_t len)
{
    add(b, id, 4);
    add32(b, len);
    add(b, body, len);
    if (len & 1) add(b, "", 1);
}

static void end_wav(cs_buf *b)
{
    uint32_t riff = (uint32_t)b->len - 8;
    uint8_t p[4] = {(uint8_t)riff, (uint8_t)(riff >> 8), (uint8_t)(riff >> 16),
                    (uint8_t)(riff >> 24)};
    memcpy(b->data + 4, p, 4);
}

typedef struct fmt_spec {
    unsigned format, channels, rate, bits;
    bool extensible;
} fmt_spec;

#define FORMAT_EXTENSIBLE 0xFFFE

static const uint8_t subtype_tail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80,
                                         0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};

static void add_fmt(cs_buf *b, const fmt_spec *f)
{
    add(b, "fmt ", 4);
    add32(b, f->extensible ? 40 : 16);
    add16(b, f->extensible ? FORMAT_EXTENSIBLE : f->format);
    add16(b, f->channels);
    add32(b, f->rate);
    add32(b, f->rate * f->channels * f->bits / 8);
    add16(b, f->channels * f->bits / 8);
    add16(b, f->bits);
    if (f->extensible) {
        add16(b, 22);      /* cbSize */
        add16(b, f->bits); /* valid bits */
        add32(b, 0);       /* channel mask */
        add16(b, f->format);
        add(b, subtype_tail, sizeof subtype_tail);
    }
}

/* A whole file: fmt, then `data` as the data chunk. */
static void build_wav(cs_buf *b, const fmt_spec *f, const void *data, uint32_t len)
{
    begin_wav(b);
    add_fmt(b, f);
    add_chunk(b, "data", data, len);
    end_wav(b);
}

static int parse_buf(const cs_buf *b, cs_wav_info *info)
{
    return cs_wav_parse((const uint8_t *)b->data, b->len, info);
}

/* ---- the canonical header ---- */

static const uint8_t header_8k_mono_16[CS_WAV_HEADER_LEN] = {
    'R',  'I',  'F',  'F',  0x34, 0x00, 0x00, 0x00, 'W',  'A',  'V',  'E',  'f',  'm',  't',
    ' ',  0x10, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x40, 0x1F, 0x00, 0x00, 0x80, 0x3E,
    0x00, 0x00, 0x02, 0x00, 0x10, 0x00, 'd',  'a',  't',  'a',  0x10, 0x00, 0x00, 0x00,
};

/* The samples of tests/data/audio/pcm16_8k_mono.wav (written by Python's wave module). */
static const int16_t golden_mono[8] = {0, 1, -1, 32767, -32768, 1000, -1000, 12345};

static void header_golden_bytes(void **state)
{
    (void)state;
    uint8_t h[CS_WAV_HEADER_LEN];
    cs_wav_header(h, 8000, 1, 16);
    assert_memory_equal(h, header_8k_mono_16, sizeof h);

    size_t len;
    uint8_t *golden = tu_read_file(tu_data_path("audio/pcm16_8k_mono.wav"), &len);
    assert_non_null(golden);
    assert_int_equal(len, CS_WAV_HEADER_LEN + sizeof golden_mono);
    assert_memory_equal(golden, h, sizeof h);

    /* The writer produces the same file byte for byte. */
    cs_wav_writer w;
    assert_int_equal(cs_wav_writer_open(&w, tmp_path("golden.wav"), 8000, 1), 0);
    assert_int_equal(cs_wav_writer_write(&w, 0, golden_mono, 8), 0);
    assert_int_equal(cs_wav_writer_close(&w, false), 0);
    size_t wlen;
    uint8_t *written = tu_read_file(tmp_path("golden.wav"), &wlen);
    assert_non_null(written);
    assert_int_equal(wlen, len);
    assert_memory_equal(written, golden, len);
    free(written);
    free(golden);

    /* 16 kHz stereo: byte rate 64000, frame 4 bytes. */
    cs_wav_header(h, 16000, 2, 400);
    assert_int_equal(get32(h + 4), 436);
    assert_int_equal(get16(h + 22), 2);
    assert_int_equal(get32(h + 24), 16000);
    assert_int_equal(get32(h + 28), 64000);
    assert_int_equal(get16(h + 32), 4);
    assert_int_equal(get32(h + 40), 400);
    /* Data too large for the RIFF size saturates it rather than wrapping. */
    cs_wav_header(h, 8000, 1, UINT32_MAX - 10);
    assert_int_equal(get32(h + 4), UINT32_MAX);
    assert_int_equal(get32(h + 40), UINT32_MAX - 10);
}

/* ---- files from other writers ---- */

static void load_golden(const char *name, const int16_t *want, size_t n, unsigned rate)
{
    int16_t *s;
    size_t got;
    unsigned r;
    assert_int_equal(cs_wav_load(tu_data_path(name), &s, &got, &r), 0);
    assert_int_equal(r, rate);
    assert_int_equal(got, n);
    for (size_t i = 0; i < n; i++) assert_int_equal(s[i], want[i]);
    free(s);
}

/* Made by sox 14.4 from the same samples: sox_s24_16k_stereo.wav is 24-bit stereo in
 * WAVE_FORMAT_EXTENSIBLE with a fact chunk; the float and A-law files have an 18-byte
 * fmt and a fact chunk. */
static void parse_files_from_other_writers(void **state)
{
    (void)state;
    load_golden("audio/pcm16_8k_mono.wav", golden_mono, 8, 8000);
    load_golden("audio/sox_f32_8k_mono.wav", golden_mono, 8, 8000);

    /* (L + R) / 2 of the stereo source, truncated toward zero. */
    static const int16_t stereo_avg[8] = {0, 0, 0, 1, -1, 2000, -15000, 255};
    load_golden("audio/sox_s24_16k_stereo.wav", stereo_avg, 8, 16000);

    /* sox rounds before companding, so its codes are taken as they are in the file. */
    static const uint8_t codes[8] = {0xD5, 0xD5, 0xD5, 0xAA, 0x2A, 0xFA, 0x7A, 0xBD};
    int16_t alaw[8];
    cs_alaw_decode(alaw, codes, 8);
    load_golden("audio/sox_alaw_8k_mono.wav", alaw, 8, 8000);

    size_t len;
    uint8_t *buf = tu_read_file(tu_data_path("audio/sox_s24_16k_stereo.wav"), &len);
    assert_non_null(buf);
    cs_wav_info info;
    assert_int_equal(cs_wav_parse(buf, len, &info), 0);
    assert_int_equal(info.format, CS_WAV_PCM);
    assert_int_equal(info.channels, 2);
    assert_int_equal(info.bits, 24);
    assert_int_equal(info.rate, 16000);
    assert_int_equal(info.data_offset, 80);
    assert_int_equal(info.data_len, 48);
    free(buf);
}

/* ---- the speech corpus ---- */

static const char *corpus_dir(void)
{
    const char *dir = getenv("CS_CORPUS");
    if (!dir || !*dir) return NULL;
    static char manifest[4096];
    snprintf(manifest, sizeof manifest, "%s/MANIFEST.tsv", dir);
    return access(manifest, R_OK) == 0 ? dir : NULL;
}

typedef struct corpus_entry {
    char name[256]; /* "wav/NAME.wav" */
    double seconds;
    unsigned rate;
} corpus_entry;

/* Reads MANIFEST.tsv (file, seconds, sample_rate, …); returns the number of rows. */
static size_t read_manifest(const char *dir, corpus_entry *rows, size_t max)
{
    char path[4096], line[4096];
    snprintf(path, sizeof path, "%s/MANIFEST.tsv", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = 0;
    assert_non_null(fgets(line, sizeof line, f)); /* column names */
    while (n < max && fgets(line, sizeof line, f)) {
        if (sscanf(line, "%255[^\t]\t%lf\t%u", rows[n].name, &rows[n].seconds, &rows[n].rate) == 3)
            n++;
    }
    fclose(f);
    return n;
}

#define CORPUS_MAX 128

static double correlation(const int16_t *a, const int16_t *b, size_t n)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / sqrt(aa * bb);
}

/* Every recording loads at its rate and length; its μ-law copy (made by sox) loads at
 * 8 kHz and, once the original is brought to 8 kHz, is the same signal. */
static void corpus_files(void **state)
{
    (void)state;
    const char *dir = corpus_dir();
    if (!dir) skip();
    static corpus_entry rows[CORPUS_MAX];
    size_t count = read_manifest(dir, rows, CORPUS_MAX);
    assert_true(count > 0);
    double worst = 1.0;
    for (size_t i = 0; i < count; i++) {
        char path[4096];
        int16_t *pcm, *ulaw, *pcm8k;
        size_t n, un, n8k;
        unsigned rate, urate;
        assert_true(snprintf(path, sizeof path, "%s/%s", dir, rows[i].name) < (int)sizeof path);
        assert_int_equal(cs_wav_load(path, &pcm, &n, &rate), 0);
        assert_int_equal(rate, rows[i].rate);
        assert_true(fabs((double)n / rate - rows[i].seconds) <= 0.0005 + 1.0 / rate);

        assert_memory_equal(rows[i].name, "wav/", 4);
        assert_true(snprintf(path, sizeof path, "%s/ulaw8k/%s", dir, rows[i].name + 4) <
                    (int)sizeof path);
        size_t len;
        uint8_t *raw = tu_read_file(path, &len);
        assert_non_null(raw);
        cs_wav_info info;
        assert_int_equal(cs_wav_parse(raw, len, &info), 0);
        assert_int_equal(info.format, CS_WAV_ULAW);
        assert_int_equal(info.bits, 8);
        assert_int_equal(info.channels, 1);
        free(raw);
        assert_int_equal(cs_wav_load(path, &ulaw, &un, &urate), 0);
        assert_int_equal(urate, 8000);
        assert_true(fabs((double)un / 8000 - rows[i].seconds) <= 0.002);

        assert_int_equal(cs_resample_all(pcm, n, rate, 8000, &pcm8k, &n8k), 0);
        double c = correlation(pcm8k, ulaw, n8k < un ? n8k : un);
        if (c < worst) worst = c;
        assert_true(c > 0.95);
        free(pcm);
        free(ulaw);
        free(pcm8k);
    }
    print_message("%zu corpus recordings; lowest μ-law/original correlation %.4f\n", count, worst);
}

/* ---- every supported format, synthesized ---- */

static const int16_t probe[] = {0, 1, -1, 255, -256, 1000, -1000, 12345, -12345, 32767, -32768};
#define NPROBE (sizeof probe / sizeof *probe)

static const struct {
    unsigned format, bits;
} formats[] = {
    {CS_WAV_PCM, 8},    {CS_WAV_PCM, 16},   {CS_WAV_PCM, 24}, {CS_WAV_PCM, 32},
    {CS_WAV_FLOAT, 32}, {CS_WAV_FLOAT, 64}, {CS_WAV_ULAW, 8}, {CS_WAV_ALAW, 8},
};

/* IEEE floats, little-endian whatever the host. */
static void store_f32(uint8_t *p, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, 4);
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(bits >> 8 * i);
}

static void store_f64(uint8_t *p, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(bits >> 8 * i);
}

/* Stores x in the given format; returns what a 16-bit reading of it must give. */
static int encode_sample(uint8_t *p, unsigned format, unsigned bits, int16_t x)
{
    uint16_t u = (uint16_t)x;
    if (format == CS_WAV_PCM && bits == 8) {
        p[0] = (uint8_t)((x >> 8) + 128);
        return (x >> 8) * 256;
    }
    if (format == CS_WAV_PCM) {
        /* Low bytes beyond 16 bits carry junk that must not leak into the result. */
        memset(p, 0xA5, bits / 8 - 2);
        p[bits / 8 - 2] = (uint8_t)u;
        p[bits / 8 - 1] = (uint8_t)(u >> 8);
        return x;
    }
    if (format == CS_WAV_FLOAT && bits == 32) {
        store_f32(p, (float)x / 32768.0f);
        return x;
    }
    if (format == CS_WAV_FLOAT) {
        store_f64(p, (double)x / 32768.0);
        return x;
    }
    if (format == CS_WAV_ULAW) {
        p[0] = cs_pcm_to_ulaw(x);
        return cs_ulaw_to_pcm[p[0]];
    }
    p[0] = cs_pcm_to_alaw(x);
    return cs_alaw_to_pcm[p[0]];
}

static void every_format_synthesized(void **state)
{
    (void)state;
    for (size_t f = 0; f < sizeof formats / sizeof *formats; f++) {
        for (unsigned channels = 1; channels <= 2; channels++) {
            for (int ext = 0; ext <= 1; ext++) {
                fmt_spec spec = {formats[f].format, channels, 11025, formats[f].bits, ext};
                size_t width = spec.bits / 8;
                uint8_t data[NPROBE * 2 * 8];
                int want[NPROBE];
                for (size_t i = 0; i < NPROBE; i++) {
                    uint8_t *frame = data + i * channels * width;
                    int left = encode_sample(frame, spec.format, spec.bits, probe[i]);
                    /* The right channel carries the negated sample (clamped). */
                    int16_t neg = probe[i] == INT16_MIN ? INT16_MAX : (int16_t)-probe[i];
                    int right = channels == 2
                                    ? encode_sample(frame + width, spec.format, spec.bits, neg)
                                    : 0;
                    want[i] = channels == 2 ? (left + right) / 2 : left;
                }
                uint32_t len = (uint32_t)(NPROBE * channels * width);
                cs_buf b;
                build_wav(&b, &spec, data, len);

                cs_wav_info info;
                assert_int_equal(parse_buf(&b, &info), 0);
                assert_int_equal(info.format, spec.format);
                assert_int_equal(info.bits, spec.bits);
                assert_int_equal(info.channels, channels);
                assert_int_equal(info.rate, 11025);
                assert_int_equal(info.data_offset, ext ? 68 : 44);
                assert_int_equal(info.data_len, len);

                write_file(tmp_path("synth.wav"), b.data, b.len);
                cs_buf_free(&b);
                int16_t *s;
                size_t n;
                unsigned rate;
                assert_int_equal(cs_wav_load(tmp_path("synth.wav"), &s, &n, &rate), 0);
                assert_int_equal(n, NPROBE);
                assert_int_equal(rate, 11025);
                for (size_t i = 0; i < NPROBE; i++) assert_int_equal(s[i], want[i]);
                free(s);
            }
        }
    }
}

static void float_is_clipped(void **state)
{
    (void)state;
    static const double in[] = {1.0, 1.5, -1.0, -2.0, NAN, INFINITY, -INFINITY, 0.5, -0.5};
    static const int16_t want[] = {32767, 32767, -32768, -32768, 0, 32767, -32768, 16384, -16384};
    size_t n = sizeof in / sizeof *in;
    for (unsigned bits = 32; bits <= 64; bits += 32) {
        uint8_t data[sizeof in];
        for (size_t i = 0; i < n; i++) {
            if (bits == 32)
                store_f32(data + 4 * i, (float)in[i]);
            else
                store_f64(data + 8 * i, in[i]);
        }
        fmt_spec spec = {CS_WAV_FLOAT, 1, 8000, bits, false};
        cs_buf b;
        build_wav(&b, &spec, data, (uint32_t)(n * bits / 8));
        write_file(tmp_path("float.wav"), b.data, b.len);
        cs_buf_free(&b);
        int16_t *s;
        size_t got;
        unsigned rate;
        assert_int_equal(cs_wav_load(tmp_path("float.wav"), &s, &got, &rate), 0);
        assert_int_equal(got, n);
        for (size_t i = 0; i < n; i++) assert_int_equal(s[i], want[i]);
        free(s);
    }
}

/* ---- chunk layout ---- */

static void skips_unknown_and_odd_chunks(void **state)
{
    (void)state;
    fmt_spec spec = {CS_WAV_PCM, 1, 8000, 16, false};
    int16_t data[4] = {1, -2, 3, -4};
    cs_buf b;
    begin_wav(&b);
    add_chunk(&b, "LIST", "INFOx", 5); /* odd: a pad byte follows */
    add_fmt(&b, &spec);
    add_chunk(&b, "fact", "\4\0\0\0", 4);
    add_chunk(&b, "junk", "abc", 3);
    add_chunk(&b, "data", data, sizeof data);
    end_wav(&b);

    cs_wav_info info;
    assert_int_equal(parse_buf(&b, &info), 0);
    size_t off = 12 + (8 + 5 + 1) + (8 + 16) + (8 + 4) + (8 + 3 + 1) + 8;
    assert_int_equal(info.data_offset, off);
    assert_int_equal(info.data_len, sizeof data);
    assert_memory_equal(b.data + off, data, sizeof data);

    /* A buffer that stops right where the data starts is enough. */
    assert_int_equal(cs_wav_parse((const uint8_t *)b.data, off, &info), 0);
    assert_int_equal(info.data_offset, off);
    assert_int_equal(info.data_len, 0);

    write_file(tmp_path("chunks.wav"), b.data, b.len);
    cs_buf_free(&b);
    int16_t *s;
    size_t n;
    unsigned rate;
    assert_int_equal(cs_wav_load(tmp_path("chunks.wav"), &s, &n, &rate), 0);
    assert_int_equal(n, 4);
    assert_memory_equal(s, data, sizeof data);
    free(s);
}

/* A data size beyond the end of the file (crashed writer, streaming writer's 0xFFFFFFFF)
 * is clamped; a trailing partial frame is dropped on load. */
static void clamps_overstated_data(void **state)
{
    (void)state;
    static const uint32_t sizes[] = {UINT32_MAX, 1000, 9};
    int16_t data[5] = {100, 200, 300, 400, 500}; /* 2.5 stereo frames */
    fmt_spec spec = {CS_WAV_PCM, 2, 8000, 16, false};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        cs_buf b;
        begin_wav(&b);
        add_fmt(&b, &spec);
        add(&b, "data", 4);
        add32(&b, sizes[i]);
        add(&b, data, sizeof data - 1); /* 9 bytes */
        end_wav(&b);
        cs_wav_info info;
        assert_int_equal(parse_buf(&b, &info), 0);
        assert_int_equal(info.data_len, 9);
        write_file(tmp_path("clamp.wav"), b.data, b.len);
        cs_buf_free(&b);
        int16_t *s;
        size_t n;
        unsigned rate;
        assert_int_equal(cs_wav_load(tmp_path("clamp.wav"), &s, &n, &rate), 0);
        assert_int_equal(n, 2);
        assert_int_equal(s[0], 150);
        assert_int_equal(s[1], 350);
        free(s);
    }
}

/* ---- malformed input ---- */

static void expect_parse_error(cs_buf *b)
{
    end_wav(b);
    cs_wav_info info;
    assert_int_equal(parse_buf(b, &info), CS_EPARSE);
    cs_buf_free(b);
}

static void rejects_garbage(void **state)
{
    (void)state;
    cs_wav_info info;
    static const uint8_t zeros[64];
    assert_int_equal(cs_wav_parse(zeros, sizeof zeros, &info), CS_EPARSE);
    assert_int_equal(cs_wav_parse((const uint8_t *)"RIFF\0\0\0\0WAV", 11, &info), CS_EPARSE);
    assert_int_equal(cs_wav_parse((const uint8_t *)"RIFX\0\0\0\0WAVE", 12, &info), CS_EPARSE);
    assert_int_equal(cs_wav_parse((const uint8_t *)"RIFF\0\0\0\0AVI ", 12, &info), CS_EPARSE);
    assert_int_equal(cs_wav_parse((const uint8_t *)"RIFF\0\0\0\0WAVE", 12, &info), CS_EPARSE);

    /* Unsupported or impossible formats, plain and extensible. */
    static const fmt_spec bad[] = {
        {2, 1, 8000, 4, false}, /* MS ADPCM */
        {CS_WAV_PCM, 1, 8000, 12, false},
        {CS_WAV_FLOAT, 1, 8000, 16, false},
        {CS_WAV_ULAW, 1, 8000, 16, false},
        {CS_WAV_ALAW, 1, 8000, 4, false},
        {CS_WAV_PCM, 0, 8000, 16, false},
        {CS_WAV_PCM, CS_WAV_MAX_CHANNELS + 1, 8000, 16, false},
        {CS_WAV_PCM, 1, 0, 16, false},
        {2, 1, 8000, 4, true},
        {CS_WAV_PCM, 1, 8000, 12, true},
    };
    int16_t data[2] = {0};
    cs_buf b;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        begin_wav(&b);
        add_fmt(&b, &bad[i]);
        add_chunk(&b, "data", data, sizeof data);
        expect_parse_error(&b);
    }

    /* Broken layouts. */
    fmt_spec ok = {CS_WAV_PCM, 1, 8000, 16, false};
    begin_wav(&b); /* no fmt */
    add_chunk(&b, "LIST", "abcd", 4);
    add_chunk(&b, "data", data, sizeof data);
    expect_parse_error(&b);
    begin_wav(&b); /* data before fmt */
    add_chunk(&b, "data", data, sizeof data);
    add_fmt(&b, &ok);
    expect_parse_error(&b);
    begin_wav(&b); /* no data */
    add_fmt(&b, &ok);
    add_chunk(&b, "LIST", "abcd", 4);
    expect_parse_error(&b);
    begin_wav(&b); /* fmt shorter than WAVEFORMAT */
    add_chunk(&b, "fmt ", "\1\0\1\0\x40\x1f\0\0\x80\x3e\0\0\2\0", 14);
    add_chunk(&b, "data", data, sizeof data);
    expect_parse_error(&b);
    begin_wav(&b); /* buffer ends inside fmt */
    add_fmt(&b, &ok);
    b.len -= 6;
    expect_parse_error(&b);
    begin_wav(&b); /* a chunk claims 1000 bytes, the buffer ends before data */
    add_fmt(&b, &ok);
    add(&b, "LIST\xe8\x03\0\0abcd", 12);
    expect_parse_error(&b);

    /* WAVE_FORMAT_EXTENSIBLE without room for its fields, with a short cbSize, or naming a
     * subformat outside the KSDATAFORMAT_SUBTYPE family. */
    fmt_spec ext = {CS_WAV_PCM, 1, 8000, 16, true};
    for (int defect = 0; defect < 3; defect++) {
        begin_wav(&b);
        size_t at = b.len;
        add_fmt(&b, &ext);
        uint8_t *body = (uint8_t *)b.data + at + 8;
        if (defect == 0) {
            b.data[at + 4] = 18;
            b.len = at + 8 + 18;
        }
        if (defect == 1) body[16] = 0;     /* cbSize */
        if (defect == 2) body[39] ^= 0xFF; /* last GUID byte */
        add_chunk(&b, "data", data, sizeof data);
        expect_parse_error(&b);
    }

    /* Noise, with or without a valid RIFF/WAVE start, never parses into bytes it does not
     * have (nor crashes, under the sanitizers). */
    srand(7);
    uint8_t noise[512];
    for (int round = 0; round < 2000; round++) {
        for (size_t i = 0; i < sizeof noise; i++) noise[i] = (uint8_t)rand();
        if (round % 2) memcpy(noise, "RIFF\xff\xff\xff\xffWAVE", 12);
        size_t len = (size_t)rand() % sizeof noise;
        int rc = cs_wav_parse(noise, len, &info);
        assert_true(rc == CS_EPARSE || (rc == 0 && info.data_offset + info.data_len <= len));
    }
}

static void load_errors(void **state)
{
    (void)state;
    int16_t *s;
    size_t n;
    unsigned rate;
    assert_int_equal(cs_wav_load(tmp_path("missing.wav"), &s, &n, &rate), -ENOENT);
    assert_int_equal(cs_wav_load(tmpdir, &s, &n, &rate), -EISDIR);

    write_file(tmp_path("short.wav"), "RIFF", 4);
    assert_int_equal(cs_wav_load(tmp_path("short.wav"), &s, &n, &rate), CS_EPARSE);
    write_file(tmp_path("text.wav"), "this is not a wav file at all", 29);
    assert_int_equal(cs_wav_load(tmp_path("text.wav"), &s, &n, &rate), CS_EPARSE);

    /* Just over the limit, as a sparse file. */
    int fd = open(tmp_path("huge.wav"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)CS_WAV_MAX_LOAD + 1), 0);
    close(fd);
    assert_int_equal(cs_wav_load(tmp_path("huge.wav"), &s, &n, &rate), -EFBIG);
    unlink(tmp_path("huge.wav"));
}

/* ---- the writer ---- */

static int16_t *load_ok(const char *path, size_t *n, unsigned rate)
{
    int16_t *s;
    unsigned r;
    assert_int_equal(cs_wav_load(path, &s, n, &r), 0);
    assert_int_equal(r, rate);
    return s;
}

/* Data size the header states, and checks the RIFF size agrees with it. */
static uint32_t header_data_size(const char *path)
{
    uint8_t h[CS_WAV_HEADER_LEN];
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(h, 1, sizeof h, f), sizeof h);
    fclose(f);
    assert_int_equal(get32(h + 4), get32(h + 40) + 36);
    return get32(h + 40);
}

static void writer_places_frames_with_gaps(void **state)
{
    (void)state;
    const char *path = tmp_path("gaps.wav");
    int16_t a[10], b[5];
    for (int i = 0; i < 10; i++) a[i] = (int16_t)(1000 + i);
    for (int i = 0; i < 5; i++) b[i] = (int16_t)(-1 - i);
    cs_wav_writer w;
    assert_int_equal(cs_wav_writer_open(&w, path, 8000, 1), 0);
    assert_int_equal(cs_wav_writer_write(&w, 100, a, 10), 0);
    assert_int_equal(w.frames, 110);
    assert_int_equal(cs_wav_writer_write(&w, 0, b, 5), 0);
    assert_int_equal(cs_wav_writer_write(&w, 500, b, 0), 0); /* nothing to place */
    assert_int_equal(w.frames, 110);
    assert_int_equal(cs_wav_writer_close(&w, true), 0);
    assert_int_equal(w.fd, -1);

    assert_int_equal(file_size(path), CS_WAV_HEADER_LEN + 220);
    assert_int_equal(header_data_size(path), 220);
    size_t n;
    int16_t *s = load_ok(path, &n, 8000);
    assert_int_equal(n, 110);
    assert_memory_equal(s, b, sizeof b);
    for (size_t i = 5; i < 100; i++) assert_int_equal(s[i], 0);
    assert_memory_equal(s + 100, a, sizeof a);
    free(s);
}

static void writer_overwrites(void **state)
{
    (void)state;
    const char *path = tmp_path("overwrite.wav");
    int16_t first[100], second[10];
    for (int i = 0; i < 100; i++) first[i] = 1000;
    for (int i = 0; i < 10; i++) second[i] = -5;
    cs_wav_writer w;
    assert_int_equal(cs_wav_writer_open(&w, path, 16000, 1), 0);
    assert_int_equal(cs_wav_writer_write(&w, 0, first, 100), 0);
    assert_int_equal(cs_wav_writer_write(&w, 50, second, 10), 0);
    assert_int_equal(w.frames, 100);
    assert_int_equal(cs_wav_writer_close(&w, false), 0);
    size_t n;
    int16_t *s = load_ok(path, &n, 16000);
    assert_int_equal(n, 100);
    for (size_t i = 0; i < 100; i++) assert_int_equal(s[i], i >= 50 && i < 60 ? -5 : 1000);
    free(s);
}

/* Frames are stored interleaved, little-endian; more than one write block's worth. */
static void writer_stereo_interleave(void **state)
{
    (void)state;
    const char *path = tmp_path("stereo.wav");
    enum { FRAMES = 3000 };
    static int16_t frames[FRAMES * 2];
    for (int i = 0; i < FRAMES; i++) {
        frames[2 * i] = (int16_t)(i * 10);
        frames[2 * i + 1] = (int16_t)(-i * 10 - 2);
    }
    cs_wav_writer w;
    assert_int_equal(cs_wav_writer_open(&w, path, 8000, 2), 0);
    assert_int_equal(cs_wav_writer_write(&w, 0, frames, FRAMES), 0);
    assert_int_equal(cs_wav_writer_close(&w, false), 0);

    size_t len;
    uint8_t *raw = tu_read_file(path, &len);
    assert_non_null(raw);
    assert_int_equal(len, CS_WAV_HEADER_LEN + FRAMES * 4);
    assert_int_equal(get16(raw + 22), 2);
    for (int i = 0; i < FRAMES; i++) {
        const uint8_t *f = raw + CS_WAV_HEADER_LEN + 4 * i;
        assert_int_equal((int16_t)get16(f), frames[2 * i]);
        assert_int_equal((int16_t)get16(f + 2), frames[2 * i + 1]);
    }
    free(raw);

    size_t n;
    int16_t *s = load_ok(path, &n, 8000);
    assert_int_equal(n, FRAMES);
    for (int i = 0; i < FRAMES; i++) assert_int_equal(s[i], -1); /* (10i - 10i - 2) / 2 */
    free(s);
}

/* The process dies after update_header: the file holds more than its header says. */
static void repair_after_crash(void **state)
{
    (void)state;
    const char *path = tmp_path("crash.wav");
    int16_t data[150];
    for (int i = 0; i < 150; i++) data[i] = (int16_t)(i * 7);
    cs_wav_writer w;
    assert_int_equal(cs_wav_writer_open(&w, path, 8000, 1), 0);
    assert_int_equal(cs_wav_writer_write(&w, 0, data, 100), 0);
    assert_int_equal(cs_wav_writer_update_header(&w), 0);
    assert_int_equal(w.header_frames, 100);
    assert_int_equal(cs_wav_writer_write(&w, 100, data + 100, 50), 0);
    close(w.fd); /* crash: no final header */

    assert_int_equal(header_data_size(path), 200);
    assert_int_equal(cs_wav_repair(path), 1);
    assert_int_equal(header_data_size(path), 300);
    assert_int_equal(file_size(path), CS_WAV_HEADER_LEN + 300);
    assert_int_equal(cs_wav_repair(path), 0);
    size_t n;
    int16_t *s = load_ok(path, &n, 8000);
    assert_int_equal(n, 150);
    assert_memory_equal(s, data, sizeof data);
    free(s);
}

static void repair_drops_partial_frame(void **state)
{
    (void)state;
    const char *path = tmp_path("partial.wav");
    int16_t frames[20] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
    cs_wav_writer w;
    assert_int_equal(cs_wav_writer_open(&w, path, 8000, 2), 0);
    assert_int_equal(cs_wav_writer_write(&w, 0, frames, 10), 0);
    assert_int_equal(cs_wav_writer_close(&w, false), 0);
    FILE *f = fopen(path, "ab");
    assert_non_null(f);
    assert_int_equal(fwrite("\1\2\3", 1, 3, f), 3); /* three bytes of an 11th frame */
    fclose(f);

    assert_int_equal(cs_wav_repair(path), 1);
    assert_int_equal(file_size(path), CS_WAV_HEADER_LEN + 40);
    assert_int_equal(header_data_size(path), 40);
    assert_int_equal(cs_wav_repair(path), 0);
}

static void repair_leaves_good_file(void **state)
{
    (void)state;
    const char *path = tmp_path("good.wav");
    cs_wav_writer w;
    assert_int_equal(cs_wav_writer_open(&w, path, 8000, 1), 0);
    assert_int_equal(cs_wav_writer_write(&w, 0, golden_mono, 8), 0);
    assert_int_equal(cs_wav_writer_close(&w, true), 0);
    size_t before_len, after_len;
    uint8_t *before = tu_read_file(path, &before_len);
    assert_non_null(before);
    assert_int_equal(cs_wav_repair(path), 0);
    uint8_t *after = tu_read_file(path, &after_len);
    assert_non_null(after);
    assert_int_equal(after_len, before_len);
    assert_memory_equal(after, before, before_len);
    free(before);
    free(after);

    /* An empty recording is fine too. */
    assert_int_equal(cs_wav_writer_open(&w, path, 8000, 1), 0);
    assert_int_equal(cs_wav_writer_close(&w, false), 0);
    assert_int_equal(cs_wav_repair(path), 0);
}

static void repair_refuses_other_files(void **state)
{
    (void)state;
    assert_int_equal(cs_wav_repair(tmp_path("missing.wav")), -ENOENT);
    write_file(tmp_path("tiny.wav"), "RIFF\0\0\0\0WAVE", 12);
    assert_int_equal(cs_wav_repair(tmp_path("tiny.wav")), CS_EPARSE);
    static const uint8_t text[64] = "not a wav, but long enough to hold a header";
    write_file(tmp_path("text.wav"), text, sizeof text);
    assert_int_equal(cs_wav_repair(tmp_path("text.wav")), CS_EPARSE);

    /* WAVs we would not have written: A-law from sox, 8-bit PCM, a chunk before data. */
    size_t len;
    uint8_t *alaw = tu_read_file(tu_data_path("audio/sox_alaw_8k_mono.wav"), &len);
    assert_non_null(alaw);
    write_file(tmp_path("alaw.wav"), alaw, len);
    free(alaw);
    assert_int_equal(cs_wav_repair(tmp_path("alaw.wav")), CS_EPARSE);
    uint8_t data[8] = {0};
    cs_buf b;
    fmt_spec u8 = {CS_WAV_PCM, 1, 8000, 8, false};
    build_wav(&b, &u8, data, sizeof data);
    write_file(tmp_path("u8.wav"), b.data, b.len);
    cs_buf_free(&b);
    assert_int_equal(cs_wav_repair(tmp_path("u8.wav")), CS_EPARSE);
    fmt_spec s16 = {CS_WAV_PCM, 1, 8000, 16, false};
    begin_wav(&b);
    add_fmt(&b, &s16);
    add_chunk(&b, "LIST", "abcd", 4);
    add_chunk(&b, "data", data, sizeof data);
    end_wav(&b);
    write_file(tmp_path("list.wav"), b.data, b.len);
    cs_buf_free(&b);
    assert_int_equal(cs_wav_repair(tmp_path("list.wav")), CS_EPARSE);

    /* Grown past what a WAV can describe (a sparse file). */
    uint8_t h[CS_WAV_HEADER_LEN];
    cs_wav_header(h, 8000, 1, 0);
    write_file(tmp_path("4g.wav"), h, sizeof h);
    assert_int_equal(truncate(tmp_path("4g.wav"), (off_t)CS_WAV_HEADER_LEN + (1ll << 32)), 0);
    assert_int_equal(cs_wav_repair(tmp_path("4g.wav")), -EFBIG);
    unlink(tmp_path("4g.wav"));
}

static void writer_errors(void **state)
{
    (void)state;
    cs_wav_writer w;
    int16_t x[2] = {0};
    assert_int_equal(cs_wav_writer_open(&w, tmp_path("w.wav"), 0, 1), -EINVAL);
    assert_int_equal(w.fd, -1);
    assert_int_equal(cs_wav_writer_open(&w, tmp_path("w.wav"), 8000, 0), -EINVAL);
    assert_int_equal(cs_wav_writer_open(&w, tmp_path("w.wav"), 8000, CS_WAV_MAX_CHANNELS + 1),
                     -EINVAL);
    assert_int_equal(cs_wav_writer_open(&w, tmp_path("no/such/dir.wav"), 8000, 1), -ENOENT);
    /* The header cannot be written: the file is not left open. */
    assert_int_equal(cs_wav_writer_open(&w, "/dev/full", 8000, 1), -ENOSPC);
    assert_int_equal(w.fd, -1);

    /* Closed: writes fail, close is idempotent. */
    assert_int_equal(cs_wav_writer_open(&w, tmp_path("w.wav"), 8000, 2), 0);
    assert_int_equal(cs_wav_writer_close(&w, false), 0);
    assert_int_equal(cs_wav_writer_close(&w, true), 0);
    assert_int_equal(cs_wav_writer_write(&w, 0, x, 1), -EBADF);
    assert_int_equal(cs_wav_writer_update_header(&w), -EBADF);

    /* Past what a 32-bit RIFF size can describe: the RIFF size counts 36 header bytes. */
    uint64_t max_frames = (UINT32_MAX - 36) / 4;
    assert_int_equal(cs_wav_writer_open(&w, tmp_path("w.wav"), 8000, 2), 0);
    assert_int_equal(cs_wav_writer_write(&w, max_frames, x, 1), -EFBIG);
    assert_int_equal(cs_wav_writer_write(&w, 0, x, (size_t)max_frames + 1), -EFBIG);
    assert_int_equal(cs_wav_writer_write(&w, UINT64_MAX, x, 1), -EFBIG);
    assert_int_equal(cs_wav_writer_write(&w, max_frames - 1, x, 1), 0); /* the last frame */
    assert_int_equal(cs_wav_writer_close(&w, false), 0);
    assert_int_equal(header_data_size(tmp_path("w.wav")), max_frames * 4);
    assert_int_equal(cs_wav_repair(tmp_path("w.wav")), 0);
    unlink(tmp_path("w.wav"));

    /* I/O errors surface as -errno: a descriptor that cannot be written... */
    assert_int_equal(cs_wav_writer_open(&w, tmp_path("w.wav"), 8000, 1), 0);
    int ro = open(tmp_path("w.wav"), O_RDONLY);
    assert_true(ro >= 0);
    int real = w.fd;
    w.fd = ro;
    assert_int_equal(cs_wav_writer_write(&w, 0, x, 1), -EBADF);
    assert_int_equal(cs_wav_writer_update_header(&w), -EBADF);
    w.fd = real;
    close(ro);
    assert_int_equal(cs_wav_writer_close(&w, false), 0);

    /* ...and one that cannot seek or sync; close still releases it. */
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(cs_wav_writer_open(&w, tmp_path("w.wav"), 8000, 1), 0);
    close(w.fd);
    w.fd = p[1];
    w.frames = 1; /* the header is behind */
    assert_int_equal(cs_wav_writer_close(&w, true), -ESPIPE);
    assert_int_equal(w.fd, -1);
    close(p[0]);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(cs_wav_writer_open(&w, tmp_path("w.wav"), 8000, 1), 0);
    close(w.fd);
    w.fd = p[1];
    assert_int_equal(cs_wav_writer_close(&w, true), -EINVAL);
    assert_int_equal(w.fd, -1);
    close(p[0]);
}

/* A full disk part way through a write: the file keeps whole frames only, and writing
 * goes on once there is room again. */
static void writer_failure_keeps_whole_frames(void **state)
{
    (void)state;
    const char *path = tmp_path("full.wav");
    enum { FRAMES = 3000 };
    static int16_t frames[FRAMES * 2];
    for (int i = 0; i < FRAMES * 2; i++) frames[i] = (int16_t)(i + 1);
    cs_wav_writer w;
    assert_int_equal(cs_wav_writer_open(&w, path, 8000, 2), 0);
    assert_int_equal(cs_wav_writer_write(&w, 0, frames, 50), 0);
    /* Room for 1,000 frames and 3 bytes more. */
    tu_limit_file_size(CS_WAV_HEADER_LEN + 4000 + 3);
    assert_int_equal(cs_wav_writer_write(&w, 50, frames, FRAMES - 50), -EFBIG);
    assert_int_equal(w.frames, 50);
    assert_int_equal(file_size(path), CS_WAV_HEADER_LEN + 200);
    /* Inside the file nothing grows: that still works. */
    assert_int_equal(cs_wav_writer_write(&w, 10, frames, 20), 0);
    assert_int_equal(cs_wav_writer_update_header(&w), 0);
    tu_limit_file_size(-1);
    assert_int_equal(cs_wav_writer_write(&w, 2000, frames, 10), 0);
    assert_int_equal(cs_wav_writer_close(&w, false), 0);
    assert_int_equal(file_size(path), CS_WAV_HEADER_LEN + 2010 * 4);
    assert_int_equal(header_data_size(path), 2010 * 4);
    assert_int_equal(cs_wav_repair(path), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(header_golden_bytes),
        cmocka_unit_test(parse_files_from_other_writers),
        cmocka_unit_test(corpus_files),
        cmocka_unit_test(every_format_synthesized),
        cmocka_unit_test(float_is_clipped),
        cmocka_unit_test(skips_unknown_and_odd_chunks),
        cmocka_unit_test(clamps_overstated_data),
        cmocka_unit_test(rejects_garbage),
        cmocka_unit_test(load_errors),
        cmocka_unit_test(writer_places_frames_with_gaps),
        cmocka_unit_test(writer_overwrites),
        cmocka_unit_test(writer_stereo_interleave),
        cmocka_unit_test(repair_after_crash),
        cmocka_unit_test(repair_drops_partial_frame),
        cmocka_unit_test(repair_leaves_good_file),
        cmocka_unit_test(repair_refuses_other_files),
        cmocka_unit_test(writer_errors),
        cmocka_unit_test(writer_failure_keeps_whole_frames),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
