/* WAV (RIFF) files: reading any common PCM/G.711 WAV for the simulator and tests, and
 * a writer for recordings that places audio at sample offsets, keeps the header's sizes
 * current on request (so a crash leaves a playable file) and can repair a file whose
 * header fell behind. Plain blocking file I/O: call it from worker threads only. */
#ifndef CS_WAV_H
#define CS_WAV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CS_WAV_HEADER_LEN   44          /* canonical header the writer produces */
#define CS_WAV_MAX_CHANNELS 16          /* more is refused as garbage */
#define CS_WAV_MAX_LOAD     (1ul << 30) /* cs_wav_load refuses larger files */

enum cs_wav_format {
    CS_WAV_PCM = 1,   /* integer PCM, 8/16/24/32 bit */
    CS_WAV_FLOAT = 3, /* IEEE float, 32/64 bit */
    CS_WAV_ALAW = 6,
    CS_WAV_ULAW = 7,
};

typedef struct cs_wav_info {
    enum cs_wav_format format; /* WAVE_FORMAT_EXTENSIBLE is resolved to its subformat */
    unsigned rate;
    unsigned channels;
    unsigned bits;        /* bits per sample */
    uint64_t data_offset; /* where the data chunk's bytes start */
    uint64_t data_len;    /* its size in bytes (clamped to what the file holds) */
} cs_wav_info;

/* The canonical 44-byte header of 16-bit PCM with `data_bytes` of data (the RIFF size
 * saturates at 4 GiB). */
void cs_wav_header(uint8_t out[CS_WAV_HEADER_LEN], unsigned rate, unsigned channels,
                   uint32_t data_bytes);

/* Parses the chunks of a WAV held in buf[0..len) (the whole file, or at least through
 * the start of the data chunk). Skips unknown chunks (LIST, fact, …). 0 or CS_EPARSE. */
int cs_wav_parse(const uint8_t *buf, size_t len, cs_wav_info *info);

/* Loads a WAV file as 16-bit mono at its own rate: channels are averaged, G.711 and
 * 8/24/32-bit and float samples converted (float clipped to full scale). *samples is
 * malloc'd (caller frees). 0, CS_EPARSE (not a WAV or unsupported), -EFBIG (larger than
 * CS_WAV_MAX_LOAD), or -errno. */
int cs_wav_load(const char *path, int16_t **samples, size_t *n, unsigned *rate);

/* ---- recording writer ---- */

typedef struct cs_wav_writer {
    int fd; /* -1 when closed */
    unsigned rate;
    unsigned channels;
    uint64_t frames;        /* length so far in sample frames (the furthest frame written) */
    uint64_t header_frames; /* length the header currently says */
} cs_wav_writer;

/* Creates (truncates) `path`, open for reading too (callers may pread what they wrote),
 * and writes a header for 16-bit PCM. 0, -EINVAL (rate 0, or
 * channels not in 1..CS_WAV_MAX_CHANNELS) or -errno; on failure w->fd is -1. */
int cs_wav_writer_open(cs_wav_writer *w, const char *path, unsigned rate, unsigned channels);
/* The most frames a WAV of `channels` 16-bit channels can hold (its sizes are 32-bit). */
uint64_t cs_wav_max_frames(unsigned channels);
/* Writes `nframes` interleaved frames at frame offset `pos`. Writing past the end leaves
 * the gap as zeros (silence). 0, -EFBIG past cs_wav_max_frames, -EBADF when closed, or
 * -errno; a write that fails part way (a full disk) is cut back to `frames`, so the file
 * stays a whole number of frames. */
int cs_wav_writer_write(cs_wav_writer *w, uint64_t pos, const int16_t *frames, size_t nframes);
/* Rewrites the RIFF and data sizes for the current length (no sync). 0, -EBADF when
 * closed, or -errno. */
int cs_wav_writer_update_header(cs_wav_writer *w);
/* Final header, optional fsync, close. Idempotent. 0 or -errno. */
int cs_wav_writer_close(cs_wav_writer *w, bool sync);

/* Fixes the RIFF and data sizes of a 16-bit PCM WAV we wrote, from the file's length
 * (dropping a trailing partial frame), and syncs it. Returns 1 if it was repaired, 0 if it
 * was fine, CS_EPARSE if it is not such a file, -EFBIG if it outgrew 4 GiB, or -errno. */
int cs_wav_repair(const char *path);

#endif
