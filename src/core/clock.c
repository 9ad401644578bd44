#include "core/clock.h"

#include <stdbool.h>
#include <stdio.h>

#include "core/err.h"

void cs_iso8601(char out[25], int64_t wall_ms)
{
    time_t s = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 25, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 25 - n, ".%03uZ", (unsigned)(wall_ms % 1000) % 1000u);
}

/* `n` decimal digits at *p, moving past them; -1 if they are not all there. */
static int digits(const char **p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (**p < '0' || **p > '9') return -1;
        v = v * 10 + (**p - '0');
    }
    return v;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int cs_iso8601_parse(const char *s, int64_t *wall_ms)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = s;
    int y = digits(&p, 4), mo = -1, d = -1, h = 0, mi = 0, sec = 0, ms = 0, zone = 0;
    if (y >= 0 && *p++ == '-') mo = digits(&p, 2);
    if (mo >= 1 && mo <= 12 && *p++ == '-') d = digits(&p, 2);
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap)) return CS_EPARSE;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        h = digits(&p, 2);
        if (h < 0 || h > 23 || *p++ != ':' || (mi = digits(&p, 2)) < 0 || mi > 59) return CS_EPARSE;
        if (*p == ':' && (p++, (sec = digits(&p, 2)) < 0 || sec > 59)) return CS_EPARSE;
        if (*p == '.' || *p == ',') {
            p++;
            if (*p < '0' || *p > '9') return CS_EPARSE;
            for (int scale = 100; *p >= '0' && *p <= '9'; p++, scale /= 10)
                ms += (*p - '0') * scale;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1;
            int zh = digits(&p, 2);
            if (*p == ':') p++;
            int zm = digits(&p, 2);
            if (zh < 0 || zh > 23 || zm < 0 || zm > 59) return CS_EPARSE;
            zone = sign * (zh * 60 + zm);
        }
    }
    if (*p) return CS_EPARSE;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + (mi - zone) * 60 + sec;
    *wall_ms = secs * 1000 + ms;
    return 0;
}
