/* The files of web/, compiled into the binary (cmake/embed.cmake writes the table). */
#ifndef CS_ASSETS_H
#define CS_ASSETS_H

#include <stddef.h>

typedef struct cs_asset {
    const char *path;          /* relative to web/, e.g. "static/app.css" */
    const unsigned char *data; /* NUL-terminated */
    size_t len;
    const char *etag; /* quoted, from the content */
} cs_asset;

extern const cs_asset cs_assets[];
extern const size_t cs_nassets;

/* The asset at `path`, or NULL. */
const cs_asset *cs_asset_find(const char *path, size_t n);

#endif
