/* WAV files: a chunk parser and loader for the formats recordings and test audio come in,
 * and the recording writer with its crash repair. Not a general RIFF library: no RF64,
 * no compressed formats beyond G.711, no metadata. Multi-byte fields are little-endian
 * on disk and are read and written byte by byte, whatever the host. */
#include "audio/wav.h"

#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/g711.h"
#include "core/err.h"

#define RIFF_HEADER_LEN   12 /* "RIFF", size, "WAVE" */
#define CHUNK_HEADER_LEN  8  /* id, size */
#define FMT_LEN           16 /* WAVEFORMAT: the fields every fmt chunk has */
#define FMT_EXT_LEN       40 /* WAVEFORMATEXTENSIBLE */
#define FMT_EXT_CB_LEN    22 /* the cbSize it declares */
#define FORMAT_EXTENSIBLE 0xFFFE
/* The RIFF size counts everything after its own field, so data may grow to this. */
#define MAX_DATA_BYTES (UINT32_MAX - (CS_WAV_HEADER_LEN - CHUNK_HEADER_LEN))
#define WRITE_BLOCK    4096 /* bytes converted to little-endian per pwrite */
#define FILE_MODE      0600 /* call recordings are personal data */

/* Bytes 2..15 of the KSDATAFORMAT_SUBTYPE_* GUIDs of WAVE_FORMAT_EXTENSIBLE
 * ({0000xxxx-0000-0010-8000-00AA00389B71}); bytes 0..1 hold the plain format code. */
static const uint8_t subtype_guid_tail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80,
                                              0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};

static unsigned get16(const uint8_t *p)
{
    return (unsigned)p[0] | (unsigned)p[1] << 8;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)get16(p) | (uint32_t)get16(p + 2) << 16;
}

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, v & 0xFFFF);
    put16(p + 2, v >> 16);
}

/* ---- sample formats ---- */

static int float_to_s16(double v)
{
    if (isnan(v)) return 0;
    double s = v * 32768.0;
    if (s >= 32767.0) return 32767;
    if (s <= -32768.0) return -32768;
    return (int)lrint(s);
}

static int from_u8(const uint8_t *p)
{
    return (p[0] - 128) * 256;
}

static int from_s16(const uint8_t *p)
{
    return (int16_t)get16(p);
}

/* Wider integers keep their top 16 bits. */
static int from_s24(const uint8_t *p)
{
    return (int16_t)get16(p + 1);
}

static int from_s32(const uint8_t *p)
{
    return (int16_t)get16(p + 2);
}

static int from_f32(const uint8_t *p)
{
    uint32_t bits = get32(p);
    float v;
    memcpy(&v, &bits, sizeof v);
    return float_to_s16(v);
}

static int from_f64(const uint8_t *p)
{
    uint64_t bits = (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
    double v;
    memcpy(&v, &bits, sizeof v);
    return float_to_s16(v);
}

static int from_ulaw(const uint8_t *p)
{
    return cs_ulaw_to_pcm[p[0]];
}

static int from_alaw(const uint8_t *p)
{
    return cs_alaw_to_pcm[p[0]];
}

/* Every format the loader reads; the parser refuses anything else. */
static const struct sample_codec {
    enum cs_wav_format format;
    unsigned bits;
    int (*to_s16)(const uint8_t *p);
} codecs[] = {
    {CS_WAV_PCM, 8, from_u8},    {CS_WAV_PCM, 16, from_s16},   {CS_WAV_PCM, 24, from_s24},
    {CS_WAV_PCM, 32, from_s32},  {CS_WAV_FLOAT, 32, from_f32}, {CS_WAV_FLOAT, 64, from_f64},
    {CS_WAV_ULAW, 8, from_ulaw}, {CS_WAV_ALAW, 8, from_alaw},
};

static const struct sample_codec *find_codec(unsigned format, unsigned bits)
{
    for (size_t i = 0; i < sizeof codecs / sizeof *codecs; i++)
        if (codecs[i].format == format && codecs[i].bits == bits) return &codecs[i];
    return NULL;
}

/* ---- parsing ---- */

static int parse_fmt(const uint8_t *p, uint32_t size, cs_wav_info *info)
{
    if (size < FMT_LEN) return CS_EPARSE;
    unsigned format = get16(p);
    info->channels = get16(p + 2);
    info->rate = get32(p + 4);
    info->bits = get16(p + 14);
    if (format == FORMAT_EXTENSIBLE) {
        if (size < FMT_EXT_LEN || get16(p + 16) < FMT_EXT_CB_LEN ||
            memcmp(p + 26, subtype_guid_tail, sizeof subtype_guid_tail) != 0)
            return CS_EPARSE;
        format = get16(p + 24);
    }
    if (!find_codec(format, info->bits) || info->channels == 0 ||
        info->channels > CS_WAV_MAX_CHANNELS || info->rate == 0)
        return CS_EPARSE;
    info->format = (enum cs_wav_format)format;
    return 0;
}

int cs_wav_parse(const uint8_t *buf, size_t len, cs_wav_info *info)
{
    if (len < RIFF_HEADER_LEN || memcmp(buf, "RIFF", 4) != 0 || memcmp(buf + 8, "WAVE", 4) != 0)
        return CS_EPARSE;
    cs_wav_info found;
    bool have_fmt = false;
    size_t off = RIFF_HEADER_LEN;
    while (len - off >= CHUNK_HEADER_LEN) {
        const uint8_t *chunk = buf + off;
        uint32_t size = get32(chunk + 4);
        size_t body = off + CHUNK_HEADER_LEN;
        if (memcmp(chunk, "data", 4) == 0) {
            if (!have_fmt) return CS_EPARSE;
            /* Crashed and streaming writers leave sizes past the end (even 0xFFFFFFFF). */
            found.data_offset = body;
            found.data_len = size < len - body ? size : len - body;
            *info = found;
            return 0;
        }
        if (memcmp(chunk, "fmt ", 4) == 0) {
            if (size > len - body || parse_fmt(buf + body, size, &found) < 0) return CS_EPARSE;
            have_fmt = true;
        }
        /* Chunks start on even offsets: an odd-sized one is followed by a pad byte. */
        uint64_t next = (uint64_t)body + size + (size & 1);
        if (next > len) break;
        off = (size_t)next;
    }
    return CS_EPARSE;
}

/* ---- loading ---- */

/* The whole file, if it is no larger than CS_WAV_MAX_LOAD. *buf is malloc'd. */
static int read_fd(int fd, uint8_t **buf, size_t *len)
{
    struct stat st;
    if (fstat(fd, &st) < 0) return -errno;
    if ((uint64_t)st.st_size > CS_WAV_MAX_LOAD) return -EFBIG;
    if (st.st_size < RIFF_HEADER_LEN) return CS_EPARSE;
    size_t want = (size_t)st.st_size, got = 0;
    uint8_t *data = malloc(want);
    if (!data) return -ENOMEM;
    while (got < want) {
        ssize_t n = read(fd, data + got, want - got);
        if (n == 0) break; /* the file shrank since fstat */
        if (n < 0 && errno != EINTR) {
            int err = -errno;
            free(data);
            return err;
        }
        if (n > 0) got += (size_t)n;
    }
    *buf = data;
    *len = got;
    return 0;
}

static int to_mono(const uint8_t *data, const cs_wav_info *info, int16_t **samples, size_t *n)
{
    const struct sample_codec *codec = find_codec(info->format, info->bits);
    size_t width = info->bits / 8, frame = width * info->channels;
    size_t frames = info->data_len / frame; /* a trailing partial frame is dropped */
    int16_t *out = malloc((frames ? frames : 1) * sizeof *out);
    if (!out) return -ENOMEM;
    for (size_t f = 0; f < frames; f++) {
        int sum = 0;
        for (unsigned c = 0; c < info->channels; c++, data += width) sum += codec->to_s16(data);
        out[f] = (int16_t)(sum / (int)info->channels);
    }
    *samples = out;
    *n = frames;
    return 0;
}

int cs_wav_load(const char *path, int16_t **samples, size_t *n, unsigned *rate)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    uint8_t *file = NULL;
    size_t len = 0;
    int rc = read_fd(fd, &file, &len);
    close(fd);
    if (rc < 0) return rc;
    cs_wav_info info;
    rc = cs_wav_parse(file, len, &info);
    if (rc == 0) rc = to_mono(file + info.data_offset, &info, samples, n);
    if (rc == 0) *rate = info.rate;
    free(file);
    return rc;
}

/* ---- writing ---- */

/* The canonical header's two sizes: RIFF (offset 4) and data (offset 40). */
static void put_sizes(uint8_t *header, uint32_t data_bytes)
{
    put32(header + 4, data_bytes > MAX_DATA_BYTES
                          ? UINT32_MAX
                          : data_bytes + (CS_WAV_HEADER_LEN - CHUNK_HEADER_LEN));
    put32(header + 40, data_bytes);
}

void cs_wav_header(uint8_t out[CS_WAV_HEADER_LEN], unsigned rate, unsigned channels,
                   uint32_t data_bytes)
{
    memcpy(out, "RIFF", 4);
    memcpy(out + 8, "WAVEfmt ", 8);
    put32(out + 16, FMT_LEN);
    put16(out + 20, CS_WAV_PCM);
    put16(out + 22, channels);
    put32(out + 24, rate);
    put32(out + 28, rate * channels * 2); /* bytes per second */
    put16(out + 32, channels * 2);        /* bytes per frame */
    put16(out + 34, 16);
    memcpy(out + 36, "data", 4);
    put_sizes(out, data_bytes);
}

static int pwrite_all(int fd, const uint8_t *p, size_t len, uint64_t off)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static int write_header(cs_wav_writer *w)
{
    uint8_t header[CS_WAV_HEADER_LEN];
    cs_wav_header(header, w->rate, w->channels, (uint32_t)(w->frames * w->channels * 2));
    int rc = pwrite_all(w->fd, header, sizeof header, 0);
    if (rc == 0) w->header_frames = w->frames;
    return rc;
}

int cs_wav_writer_open(cs_wav_writer *w, const char *path, unsigned rate, unsigned channels)
{
    w->fd = -1;
    if (rate == 0 || channels == 0 || channels > CS_WAV_MAX_CHANNELS) return -EINVAL;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, FILE_MODE);
    if (fd < 0) return -errno;
    *w = (cs_wav_writer){.fd = fd, .rate = rate, .channels = channels};
    int rc = write_header(w);
    if (rc < 0) {
        close(fd);
        w->fd = -1;
    }
    return rc;
}

uint64_t cs_wav_max_frames(unsigned channels)
{
    return MAX_DATA_BYTES / ((uint64_t)(channels ? channels : 1) * 2);
}

static int write_frames(cs_wav_writer *w, uint64_t off, const int16_t *frames, size_t total)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* The samples are in the file's byte order already: one write. */
    return pwrite_all(w->fd, (const uint8_t *)frames, total * 2, off);
#else
    uint8_t block[WRITE_BLOCK];
    for (size_t i = 0; i < total;) {
        size_t k = total - i < sizeof block / 2 ? total - i : sizeof block / 2;
        for (size_t j = 0; j < k; j++) put16(block + 2 * j, (uint16_t)frames[i + j]);
        int rc = pwrite_all(w->fd, block, 2 * k, off);
        if (rc < 0) return rc;
        i += k;
        off += 2 * k;
    }
    return 0;
#endif
}

int cs_wav_writer_write(cs_wav_writer *w, uint64_t pos, const int16_t *frames, size_t nframes)
{
    if (w->fd < 0) return -EBADF;
    uint64_t frame_bytes = w->channels * 2, max_frames = cs_wav_max_frames(w->channels);
    if (pos > max_frames || nframes > max_frames - pos) return -EFBIG;
    int rc = write_frames(w, CS_WAV_HEADER_LEN + pos * frame_bytes, frames, nframes * w->channels);
    if (rc < 0) {
        /* Part of it may have landed past the end: drop it, a partial frame included.
         * Shrinking needs no space, so this works on a full disk. */
        if (pos + nframes > w->frames) {
            int cut = ftruncate(w->fd, (off_t)(CS_WAV_HEADER_LEN + w->frames * frame_bytes));
            (void)cut; /* the write's error is the one to report */
        }
        return rc;
    }
    if (nframes > 0 && pos + nframes > w->frames) w->frames = pos + nframes;
    return 0;
}

int cs_wav_writer_update_header(cs_wav_writer *w)
{
    return w->fd < 0 ? -EBADF : write_header(w);
}

int cs_wav_writer_close(cs_wav_writer *w, bool sync)
{
    if (w->fd < 0) return 0;
    int rc = w->frames != w->header_frames ? write_header(w) : 0;
    if (rc == 0 && sync && fsync(w->fd) < 0) rc = -errno;
    if (close(w->fd) < 0 && rc == 0) rc = -errno;
    w->fd = -1;
    return rc;
}

/* ---- repair ---- */

static int repair_fd(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0) return -errno;
    uint8_t header[CS_WAV_HEADER_LEN];
    if (st.st_size < CS_WAV_HEADER_LEN) return CS_EPARSE;
    ssize_t n = pread(fd, header, sizeof header, 0);
    if (n < 0) return -errno;
    cs_wav_info info;
    if (n != sizeof header || cs_wav_parse(header, sizeof header, &info) < 0 ||
        info.format != CS_WAV_PCM || info.bits != 16 || info.data_offset != CS_WAV_HEADER_LEN)
        return CS_EPARSE;

    uint64_t frame = info.channels * 2;
    uint64_t data = ((uint64_t)st.st_size - CS_WAV_HEADER_LEN) / frame * frame;
    if (data > MAX_DATA_BYTES) return -EFBIG;
    bool partial = CS_WAV_HEADER_LEN + data != (uint64_t)st.st_size;
    uint8_t want[CS_WAV_HEADER_LEN];
    memcpy(want, header, sizeof want);
    put_sizes(want, (uint32_t)data);
    if (!partial && memcmp(want, header, sizeof want) == 0) return 0;

    if (partial && ftruncate(fd, (off_t)(CS_WAV_HEADER_LEN + data)) < 0) return -errno;
    int rc = pwrite_all(fd, want, sizeof want, 0);
    if (rc == 0 && fsync(fd) < 0) rc = -errno;
    return rc < 0 ? rc : 1;
}

int cs_wav_repair(const char *path)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return -errno;
    int rc = repair_fd(fd);
    if (close(fd) < 0 && rc >= 0) rc = -errno;
    return rc;
}
