/* What the API's files share (api.c has them): the JSON of stored rows and the steps of
 * a route over the store. */
#ifndef CS_API_INT_H
#define CS_API_INT_H

#include <stdbool.h>

#include "core/json.h"
#include "http/gateway.h"

/* `live`: the call is live in the cluster (the directory's word; a call live here is). */
void cs_api_call_json(cs_json *j, const cs_gateway *gw, const cs_call_row *c, bool live);
void cs_api_stream_json(cs_json *j, const cs_gateway *gw, const cs_stream_row *t, bool call_live);
/* An event with its `offset_ms` from `origin_ms` (wall; 0: unknown, 0 written). */
void cs_api_event_json(cs_json *j, const cs_event_row *e, int64_t origin_ms);
void cs_api_segment_json(cs_json *j, const cs_segment_row *g);
/* The call SID of the path, or a 404 answered. 0 or CS_ENOTFOUND. */
int cs_api_path_sid(cs_request *r, char out[65]);
/* The query string, or a 400 answered. 0 or CS_EPARSE. */
int cs_api_parse_query(cs_request *r, cs_form *q);
/* A store query answering `r` (its cb_data), or NULL with a 503 answered. */
cs_store_query *cs_api_start_query(cs_request *r, enum cs_query_kind kind, cs_store_query_fn cb);
/* Whether the query failed: then `r` was answered (404, 503) and `q` freed. */
bool cs_api_query_failed(cs_request *r, cs_store_query *q);

/* Recordings another node holds (api_remote.c): streams `node`'s answer for `sid` to `r`,
 * or answers 503 saying why it cannot. */
void cs_api_recording_remote(cs_request *r, const char *sid, const char *node);
/* A request signed by another node (CLUSTER_SECRET): 1 if its signature is good, 0 if it
 * has none (the API's credentials apply), < 0 with `r` answered (401, 403). */
int cs_api_node_auth(cs_request *r);
/* Whether `r` came from another node (cs_api_node_auth said 1). */
bool cs_api_from_node(const cs_request *r);

#endif
