#include "xmlcheck.h"

#include <expat.h>
#include <stdio.h>
#include <string.h>

typedef struct counts {
    size_t elements, attrs;
} counts;

static void on_start(void *data, const XML_Char *name, const XML_Char **atts)
{
    counts *c = data;
    (void)name;
    c->elements++;
    for (size_t i = 0; atts[i]; i += 2) c->attrs++;
}

static void on_end(void *data, const XML_Char *name)
{
    (void)data;
    (void)name;
}

typedef struct param_search {
    const char *name;
    char *out;
    size_t cap;
    bool found;
} param_search;

static void on_param(void *data, const XML_Char *name, const XML_Char **atts)
{
    param_search *p = data;
    if (strcmp(name, "Parameter") != 0) return;
    const char *n = NULL, *v = NULL;
    for (size_t i = 0; atts[i]; i += 2) {
        if (strcmp(atts[i], "name") == 0) n = atts[i + 1];
        if (strcmp(atts[i], "value") == 0) v = atts[i + 1];
    }
    if (n && v && strcmp(n, p->name) == 0) {
        snprintf(p->out, p->cap, "%s", v);
        p->found = true;
    }
}

bool xml_twiml_param(const char *xml, size_t n, const char *name, char *out, size_t cap)
{
    XML_Parser parser = XML_ParserCreate(NULL);
    if (!parser) return false;
    param_search p = {name, out, cap, false};
    XML_SetUserData(parser, &p);
    XML_SetElementHandler(parser, on_param, on_end);
    bool ok = XML_Parse(parser, xml, (int)n, 1) == XML_STATUS_OK;
    XML_ParserFree(parser);
    return ok && p.found;
}

bool xml_well_formed(const char *xml, size_t n, char *why, size_t cap, size_t *elements,
                     size_t *attrs)
{
    XML_Parser p = XML_ParserCreate(NULL);
    if (!p) {
        snprintf(why, cap, "out of memory");
        return false;
    }
    counts c = {0};
    XML_SetUserData(p, &c);
    XML_SetElementHandler(p, on_start, on_end);
    bool ok = XML_Parse(p, xml, (int)n, 1) == XML_STATUS_OK;
    if (!ok && why)
        snprintf(why, cap, "%s at line %lu column %lu", XML_ErrorString(XML_GetErrorCode(p)),
                 (unsigned long)XML_GetCurrentLineNumber(p),
                 (unsigned long)XML_GetCurrentColumnNumber(p));
    if (elements) *elements = c.elements;
    if (attrs) *attrs = c.attrs;
    XML_ParserFree(p);
    return ok;
}
