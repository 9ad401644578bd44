/* libFuzzer target for WAV parsing, loading and crash repair (audio/wav.c). The input is
 * a file. In memory: an accepted file's data lies inside it, and its head alone (through
 * the data chunk's header) parses the same with no data. On disk (a private temp folder,
 * tmpfs when there is one): the loader accepts what the parser accepts, with as many
 * samples as whole frames; repair either refuses the file or leaves one that parses as
 * 16-bit PCM whose data runs exactly to the end of the file, with the audio untouched and
 * nothing more to repair. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/wav.h"
#include "core/err.h"
#include "fuzz.h"

static char dir[256], path[300];

static void remove_dir(void)
{
    unlink(path);
    rmdir(dir);
}

static void make_dir(void)
{
    const char *base = getenv("TMPDIR");
    if (!base) base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/cs-fuzz-wav-XXXXXX", base);
    fuzz_check(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/in.wav", dir);
    atexit(remove_dir);
}

static void write_file(const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    fuzz_check(fd >= 0 && write(fd, data, size) == (ssize_t)size && close(fd) == 0);
}

static uint8_t *read_file(size_t *size)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    fuzz_check(fd >= 0 && fstat(fd, &st) == 0);
    *size = (size_t)st.st_size;
    uint8_t *p = (uint8_t *)fuzz_copy(NULL, 0, *size);
    fuzz_check(read(fd, p, *size) == (ssize_t)*size && close(fd) == 0);
    return p;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void in_memory(const uint8_t *data, size_t size, int rc, const cs_wav_info *info)
{
    fuzz_check(rc == 0 || rc == CS_EPARSE);
    if (rc) return;
    fuzz_check(info->channels >= 1 && info->channels <= CS_WAV_MAX_CHANNELS && info->rate > 0);
    fuzz_check(info->bits % 8 == 0 && info->bits >= 8 && info->bits <= 64);
    fuzz_check(info->data_offset >= 20 && info->data_offset <= size &&
               info->data_len <= size - info->data_offset);
    cs_wav_info head;
    fuzz_check(cs_wav_parse(data, (size_t)info->data_offset, &head) == 0);
    fuzz_check(head.data_offset == info->data_offset && head.data_len == 0 &&
               head.format == info->format && head.rate == info->rate &&
               head.channels == info->channels && head.bits == info->bits);
}

static void load(size_t size, int parsed, const cs_wav_info *info)
{
    int16_t *samples = NULL;
    size_t n = 0;
    unsigned rate = 0;
    int rc = cs_wav_load(path, &samples, &n, &rate);
    fuzz_check(rc == parsed);
    if (rc == 0) {
        fuzz_check(rate == info->rate && n == info->data_len / (info->bits / 8 * info->channels));
        free(samples);
    }
    (void)size;
}

static void repair(const uint8_t *data, size_t size)
{
    int rc = cs_wav_repair(path);
    fuzz_check(rc == 0 || rc == 1 || rc == CS_EPARSE || rc == -EFBIG);
    size_t len;
    uint8_t *after = read_file(&len);
    if (rc < 0) { /* refused: untouched */
        fuzz_check(len == size && (size == 0 || !memcmp(after, data, size)));
        free(after);
        return;
    }
    cs_wav_info info;
    fuzz_check(cs_wav_parse(after, len, &info) == 0);
    size_t frame = info.channels * 2;
    fuzz_check(info.format == CS_WAV_PCM && info.bits == 16 &&
               info.data_offset == CS_WAV_HEADER_LEN);
    fuzz_check(info.data_len == len - CS_WAV_HEADER_LEN && info.data_len % frame == 0);
    fuzz_check(le32(after + 40) == info.data_len && le32(after + 4) == len - 8);
    /* only the two sizes changed, and a trailing partial frame went */
    fuzz_check(len <= size && size - len < frame);
    fuzz_check(!memcmp(after, data, 4) && !memcmp(after + 8, data + 8, 32) &&
               !memcmp(after + 44, data + 44, len - 44));
    fuzz_check(rc == 1 || (len == size && !memcmp(after, data, size)));
    fuzz_check(cs_wav_repair(path) == 0);
    free(after);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) make_dir();
    cs_wav_info info;
    int rc = cs_wav_parse(data, size, &info);
    in_memory(data, size, rc, &info);
    write_file(data, size);
    load(size, rc, &info);
    repair(data, size);
    unlink(path);
    return 0;
}
