/* Configuration: one table gives every setting its environment variable, its flag
 * (--lower-case-name), default, range and help. Values come from, in rising priority:
 * defaults, a .env file, the environment, flags. `callstream --help` prints the table. */
#ifndef CS_CONFIG_H
#define CS_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "core/buf.h"

/* S(field, ENV, default, help) — a string
 * N(field, ENV, default, min, max, help) — an integer */
#define CS_CONFIG_MAP(S, N)                                                                         \
    N(port, "PORT", 8080, 0, 65535, "TCP port to listen on (0: any free port)")                    \
    S(bind, "BIND", "127.0.0.1", "address to listen on (0.0.0.0 or :: for all)")                   \
    S(public_url, "PUBLIC_URL", "",                                                                \
      "base URL Twilio reaches us at, e.g. https://calls.example.com (default: from BIND/PORT)")    \
    S(data_dir, "DATA_DIR", "./data", "where the database and recordings live")                    \
    S(database_url, "DATABASE_URL", "",                                                            \
      "store: sqlite:PATH (default DATA_DIR/callstream.db), or postgresql://…")                  \
    S(redis_url, "REDIS_URL", "",                                                                  \
      "bus and call directory shared by the nodes of a cluster: redis://[:password@]host[:port]"   \
      "[/db] (unset: this process alone)")                                                        \
    S(node_id, "NODE_ID", "", "this node's name in the cluster, [A-Za-z0-9._-] (default: host name)") \
    S(node_url, "NODE_URL", "",                                                                    \
      "where the other nodes reach this one's HTTP, e.g. http://10.0.0.5:8080 (recordings)")      \
    S(cluster_secret, "CLUSTER_SECRET", "",                                                        \
      "shared by the nodes of a cluster: signs their requests to each other (recordings); "       \
      "never logged")                                                                             \
    S(node_peers, "NODE_PEERS", "",                                                                \
      "other nodes' URLs when the directory does not list them (no REDIS_URL, or a node "         \
      "stopped): id=URL,…")                                                                       \
    N(node_heartbeat_ms, "NODE_HEARTBEAT_MS", 1000, 100, 60000,                                   \
      "how often a node tells the cluster it lives")                                              \
    N(node_ttl_ms, "NODE_TTL_MS", 5000, 500, 600000,                                              \
      "a node silent this long is lost: the others end its calls (abnormal)")                     \
    N(workers, "WORKERS", 0, 0, 64,                                                                \
      "event loops, each with its own listener (SO_REUSEPORT), connections and calls (0: one "    \
      "per core)")                                                                                 \
    S(log_level, "LOG_LEVEL", "info", "debug, info, warn or error")                                \
    S(tls_cert, "TLS_CERT", "", "PEM certificate chain: serve https:// and wss:// directly")       \
    S(tls_key, "TLS_KEY", "", "PEM private key for TLS_CERT")                                      \
    S(twilio_account_sid, "TWILIO_ACCOUNT_SID", "", "account streams must belong to (AC…)")        \
    S(twilio_auth_token, "TWILIO_AUTH_TOKEN", "",                                                  \
      "checks X-Twilio-Signature on webhooks and the media upgrade (unset: unauthenticated)")      \
    S(twilio_api_url, "TWILIO_API_URL", "https://api.twilio.com",                                \
      "Twilio's REST API, for call control and outbound calls")                                   \
    S(twilio_api_key, "TWILIO_API_KEY", "",                                                        \
      "REST API key (SK…) to use instead of the auth token, with TWILIO_API_SECRET")              \
    S(twilio_api_secret, "TWILIO_API_SECRET", "", "the API key's secret; never logged")           \
    N(twilio_api_timeout_ms, "TWILIO_API_TIMEOUT_MS", 10000, 100, 600000,                         \
      "a REST request's whole time (ms); one that times out is not retried")                      \
    S(stream_mode, "STREAM_MODE", "connect",                                                       \
      "connect: two-way <Connect><Stream>; start: one-way <Start><Stream> fork; relay: "           \
      "<Connect><ConversationRelay> (the provider does speech; text both ways); gather: no "       \
      "stream, the agent talks in <Gather>/<Say> turns")                                           \
    N(max_calls, "MAX_CALLS", 1000, 1, 1000000,                                                    \
      "calls streaming at once (media and relay sockets); past it a new call is answered in "      \
      "<Gather>/<Say> turns")                                                                      \
    N(gather_max_calls, "GATHER_MAX_CALLS", 1000, 1, 1000000,                                      \
      "conversations in <Gather>/<Say> turns at once; past it a call is answered <Hangup/>")       \
    N(gather_reply_ms, "GATHER_REPLY_MS", 8000, 500, 14000,                                        \
      "gather turns: the longest an answer waits for the agent (Twilio gives up after 15 s)")      \
    N(gather_timeout_s, "GATHER_TIMEOUT_S", 5, 1, 60,                                              \
      "gather turns: <Gather timeout>, the caller's silence before their turn is empty")           \
    N(gather_idle_s, "GATHER_IDLE_S", 120, 10, 3600,                                               \
      "gather turns: a conversation no request came for this long ends")                          \
    S(relay_language, "RELAY_LANGUAGE", "en-US", "relay and gather: language of speech and voice")       \
    S(relay_tts_provider, "RELAY_TTS_PROVIDER", "",                                                \
      "relay mode: ttsProvider, e.g. ElevenLabs, Google, Amazon (empty: the provider's default)")  \
    S(relay_voice, "RELAY_VOICE", "", "relay mode: voice of RELAY_TTS_PROVIDER (empty: default)")  \
    S(relay_transcription_provider, "RELAY_TRANSCRIPTION_PROVIDER", "",                            \
      "relay mode: transcriptionProvider, e.g. Deepgram, Google (empty: the provider's default)")  \
    S(relay_speech_model, "RELAY_SPEECH_MODEL", "",                                                \
      "relay mode: speechModel of RELAY_TRANSCRIPTION_PROVIDER (empty: default)")                  \
    S(stream_track, "STREAM_TRACK", "inbound_track",                                               \
      "start mode: inbound_track, outbound_track or both_tracks")                                  \
    S(stream_params, "STREAM_PARAMS", "", "extra <Parameter>s, form-encoded: a=1&b=2")            \
    S(greeting, "GREETING", "", "<Say> before the stream starts (empty: none)")                    \
    S(voice, "VOICE", "", "voice for the greeting, e.g. Polly.Joanna (empty: Twilio's default)")   \
    S(dial, "DIAL", "", "start mode: number to <Dial> while streaming (empty: keep the line)")     \
    S(agent, "AGENT", "none", "who talks back: none (listen only), echo, ivr, llm or openai-realtime")                   \
    S(llm_url, "LLM_URL", "",                                                                      \
      "AGENT=llm: base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:11434/v1 "           \
      "(the agent POSTs {LLM_URL}/chat/completions)")                                              \
    S(llm_model, "LLM_MODEL", "", "AGENT=llm: the model asked")                                    \
    S(llm_api_key, "LLM_API_KEY", "",                                                              \
      "AGENT=llm: sent as Authorization: Bearer (empty: none); never logged")                      \
    S(system_prompt, "SYSTEM_PROMPT",                                                              \
      "You are a friendly voice assistant answering a phone call. Answer in one to three short "   \
      "spoken sentences, with no lists or markup. Call end_call when the caller is done.",         \
      "AGENT=llm and openai-realtime: the system message (instructions) every conversation starts with")                             \
    S(llm_greeting, "LLM_GREETING", "",                                                            \
      "AGENT=llm: said as the call starts, as given, without asking the model (empty: none)")      \
    S(llm_apology, "LLM_APOLOGY", "Sorry, I didn't catch that. Could you say it again?",           \
      "AGENT=llm: said when the model fails (an error, a timeout, a broken stream)")               \
    N(llm_timeout_ms, "LLM_TIMEOUT_MS", 10000, 100, 600000,                                        \
      "AGENT=llm: the model's first token, and each next piece, must come within this (ms)")       \
    N(llm_max_tokens, "LLM_MAX_TOKENS", 300, 0, 1000000,                                           \
      "AGENT=llm: max_tokens of a reply (0: not sent)")                                            \
    S(llm_temperature, "LLM_TEMPERATURE", "",                                                      \
      "AGENT=llm: sampling temperature, 0 to 2 (empty: the server's default)")                    \
    N(llm_history_turns, "LLM_HISTORY_TURNS", 20, 1, 1000,                                         \
      "AGENT=llm: the caller's turns kept in what the model is sent (the oldest go first)")        \
    N(llm_history_chars, "LLM_HISTORY_CHARS", 12000, 100, 10000000,                                \
      "AGENT=llm: characters of conversation kept in what the model is sent (the oldest turns "    \
      "go first; the system prompt is always sent)")                                               \
    S(llm_tools_file, "LLM_TOOLS_FILE", "",                                                        \
      "AGENT=llm: a JSON list of tools the model may call: name, description, parameters (JSON "   \
      "schema), url (POSTed, signed)")                                                             \
    S(agent_transfer_targets, "AGENT_TRANSFER_TARGETS", "",                                        \
      "AGENT=llm, openai-realtime: who the model may transfer a call to, NAME=+E164 pairs split "  \
      "by commas (its transfer tool takes a name, never a number); needs call control")            \
    N(summary, "SUMMARY", 1, 0, 1,                                                                 \
      "with LLM_URL: each call summarized by the model once its transcript is final (0: none)")   \
    N(summary_max_chars, "SUMMARY_MAX_CHARS", 24000, 200, 10000000,                                \
      "transcript characters sent for a summary; a longer one keeps its start and its end")       \
    N(summary_timeout_ms, "SUMMARY_TIMEOUT_MS", 60000, 100, 600000,                                \
      "a summary request's whole time (ms); one that runs out is retried")                        \
    N(summary_retry_ms, "SUMMARY_RETRY_MS", 2000, 10, 600000,                                      \
      "the first wait before a failed summary request is tried again (ms; doubles each time)")    \
    S(ivr_file, "IVR_FILE", "", "AGENT=ivr: the JSON menu calls get (docs/agents.md)")             \
    S(ivr_dir, "IVR_DIR", "",                                                                      \
      "AGENT=ivr: folder of NAME.json menus a call may pick (<Parameter name=\"IvrMenu\">)")       \
    S(agent_webhook_secret, "AGENT_WEBHOOK_SECRET", "",                                            \
      "signs the agents' POSTs (IVR webhooks, LLM tools): X-Callstream-Signature, as for "         \
      "transcripts")                                                                               \
    S(openai_api_key, "OPENAI_API_KEY", "",                                                        \
      "OpenAI's API key (AGENT=openai-realtime, TTS=openai): sent as Authorization: Bearer; "      \
      "never logged")                                                                              \
    S(openai_realtime_url, "OPENAI_REALTIME_URL", "wss://api.openai.com/v1/realtime",              \
      "AGENT=openai-realtime: the Realtime API's WebSocket (?model= is added)")                    \
    S(openai_realtime_model, "OPENAI_REALTIME_MODEL", "gpt-realtime",                              \
      "AGENT=openai-realtime: the speech-to-speech model")                                         \
    S(openai_realtime_voice, "OPENAI_REALTIME_VOICE", "alloy",                                     \
      "AGENT=openai-realtime: the model's voice (alloy, ash, ballad, coral, echo, sage, shimmer, "  \
      "verse, marin, cedar)")                                                                      \
    S(realtime_turn_detection, "REALTIME_TURN_DETECTION", "server_vad",                            \
      "AGENT=openai-realtime: who ends the caller's turn: server_vad or semantic_vad")             \
    S(realtime_vad_threshold, "REALTIME_VAD_THRESHOLD", "0.5",                                     \
      "AGENT=openai-realtime, server_vad: activation threshold, 0 to 1")                           \
    N(realtime_vad_prefix_ms, "REALTIME_VAD_PREFIX_MS", 300, 0, 5000,                              \
      "AGENT=openai-realtime, server_vad: audio kept before the speech's start (ms)")              \
    N(realtime_vad_silence_ms, "REALTIME_VAD_SILENCE_MS", 500, 100, 10000,                         \
      "AGENT=openai-realtime, server_vad: silence that ends the caller's turn (ms)")               \
    S(realtime_eagerness, "REALTIME_EAGERNESS", "auto",                                            \
      "AGENT=openai-realtime, semantic_vad: low, medium, high or auto")                            \
    S(realtime_transcribe_model, "REALTIME_TRANSCRIBE_MODEL", "gpt-4o-mini-transcribe",            \
      "AGENT=openai-realtime: the model transcribing the caller (empty: no caller transcript)")    \
    N(realtime_prepare_ms, "REALTIME_PREPARE_MS", 30000, 1000, 600000,                             \
      "AGENT=openai-realtime: a connection opened at the voice webhook waits this long for its "  \
      "stream (ms)")                                                                               \
    S(realtime_reconnect_message, "REALTIME_RECONNECT_MESSAGE",                                    \
      "Sorry, the line dropped for a moment. Please go on.",                                       \
      "AGENT=openai-realtime: said by the local voice when the connection is lost (empty: none)")  \
    N(barge_in_min_ms, "BARGE_IN_MIN_MS", 100, 20, 2000,                                           \
      "caller speech (ms) before it counts as speaking: shorter noises never do")                  \
    N(vad_hangover_ms, "VAD_HANGOVER_MS", 600, 20, 10000,                                          \
      "silence (ms) after the caller's speech before it counts as ended (end-of-turn hint)")       \
    N(vad_threshold_db, "VAD_THRESHOLD_DB", 8, 1, 60,                                              \
      "caller audio this many dB over the line's noise floor is speech")                           \
    S(stt, "STT", "pocketsphinx", "live transcription: pocketsphinx (local), deepgram, or none")  \
    N(stt_max_sessions, "STT_MAX_SESSIONS", 4, 0, 4096,                                           \
      "speakers transcribed at once (pocketsphinx: decoders loaded, ~90 MB each)")                \
    S(stt_model_dir, "STT_MODEL_DIR", "/usr/share/pocketsphinx/model/en-us",                      \
      "pocketsphinx model: the folder with en-us/, cmudict-en-us.dict, en-us.lm.bin")             \
    S(stt_passes, "STT_PASSES", "forward",                                                        \
      "pocketsphinx live finals: forward (fast, for turn-taking), lattice or fwdflat (more "      \
      "passes: better, later)")                                                                   \
    N(stt_refine, "STT_REFINE", 1, 0, 1,                                                          \
      "pocketsphinx: each final re-decoded off the live path and sent again, refined, to "        \
      "replace it in the store, the pages and the webhook")                                       \
    S(stt_refine_passes, "STT_REFINE_PASSES", "fwdflat",                                          \
      "passes of the refining decoders: lattice or fwdflat")                                      \
    N(stt_refine_decoders, "STT_REFINE_DECODERS", 1, 1, 64,                                       \
      "refining decoders (~90 MB each), each on a low-priority thread")                           \
    N(stt_refine_queue, "STT_REFINE_QUEUE", 32, 1, 100000,                                        \
      "utterances waiting per refining decoder; past it a final stays unrefined (counted)")       \
    N(stt_refine_max_ms, "STT_REFINE_MAX_MS", 20000, 1000, 30000,                                 \
      "a longer utterance is not refined (counted); bounds the audio kept per speaker")           \
    S(stt_grammar_dir, "STT_GRAMMAR_DIR", "",                                                     \
      "folder of NAME.jsgf grammars a call may ask for (<Parameter name=\"SttGrammar\">)")       \
    S(stt_grammar, "STT_GRAMMAR", "", "grammar (a name in STT_GRAMMAR_DIR) for every call")       \
    S(stt_keywords, "STT_KEYWORDS", "",                                                           \
      "keyword spotting for every call: phrases separated by commas (or <Parameter "              \
      "name=\"SttKeywords\">)")                                                                  \
    S(deepgram_api_key, "DEEPGRAM_API_KEY", "", "STT=deepgram: the API key")                      \
    S(deepgram_url, "DEEPGRAM_URL", "wss://api.deepgram.com/v1/listen",                           \
      "STT=deepgram: the live streaming endpoint")                                                \
    S(deepgram_model, "DEEPGRAM_MODEL", "nova-2-phonecall", "STT=deepgram: the model")            \
    S(tts, "TTS", "espeak",                                                                       \
      "agents' speech: espeak (espeak-ng), flite (both local), elevenlabs, openai (cloud), "      \
      "or none")                                                                                  \
    S(tts_fallback, "TTS_FALLBACK", "espeak",                                                     \
      "cloud TTS: the local engine (espeak or flite) that speaks an utterance the cloud voice "    \
      "failed, or none")                                                                          \
    N(tts_cloud_timeout_ms, "TTS_CLOUD_TIMEOUT_MS", 5000, 100, 60000,                             \
      "cloud TTS: no audio for this long (from the request, or the last audio) fails it")        \
    S(elevenlabs_api_key, "ELEVENLABS_API_KEY", "", "TTS=elevenlabs: the API key (xi-api-key)")   \
    S(elevenlabs_voice_id, "ELEVENLABS_VOICE_ID", "21m00Tcm4TlvDq8ikWAM",                         \
      "TTS=elevenlabs: the voice id (a call's TTS voice, if set, takes its place)")               \
    S(elevenlabs_model, "ELEVENLABS_MODEL", "eleven_flash_v2_5", "TTS=elevenlabs: the model_id") \
    S(elevenlabs_url, "ELEVENLABS_URL", "wss://api.elevenlabs.io",                                \
      "TTS=elevenlabs: base URL; the engine opens {URL}/v1/text-to-speech/{voice}/stream-input")  \
    S(openai_tts_url, "OPENAI_TTS_URL", "https://api.openai.com/v1",                              \
      "TTS=openai: base URL; the engine POSTs {URL}/audio/speech")                                \
    S(openai_tts_model, "OPENAI_TTS_MODEL", "gpt-4o-mini-tts", "TTS=openai: the model")           \
    S(openai_tts_voice, "OPENAI_TTS_VOICE", "alloy",                                              \
      "TTS=openai: the voice (TTS_VOICE, if set, takes its place)")                               \
    S(tts_voice, "TTS_VOICE", "",                                                                 \
      "espeak: a voice file or name, e.g. en-us (default), en, en-gb-scotland, en-us+f3; "        \
      "flite: slt (default), kal, rms or awb")                                                    \
    N(tts_rate, "TTS_RATE", 175, 80, 450, "speaking rate, words per minute")                      \
    N(tts_pitch, "TTS_PITCH", 50, 0, 100, "voice pitch 0-100; 50 is the voice's own")             \
    N(tts_threads, "TTS_THREADS", 2, 1, 64, "flite: synthesis threads (espeak-ng has one)")       \
    N(tts_queue_max, "TTS_QUEUE_MAX", 256, 1, 100000,                                             \
      "speech jobs waiting or being spoken, all calls together; more are refused")                \
    S(transcript_webhook_url, "TRANSCRIPT_WEBHOOK_URL", "",                                       \
      "POST every final transcript segment here as JSON (empty: none)")                           \
    S(transcript_webhook_secret, "TRANSCRIPT_WEBHOOK_SECRET", "",                                 \
      "signs those POSTs: X-Callstream-Signature = hex HMAC-SHA256 of the body")                  \
    N(echo_mark_ms, "ECHO_MARK_MS", 1000, 20, 60000, "echo agent: a mark after this much audio")   \
    N(playout_lead_ms, "PLAYOUT_LEAD_MS", 100, 20, 2000,                                           \
      "agent audio is sent this far ahead of playback, so the provider never starves")            \
    N(playout_max_s, "PLAYOUT_MAX_S", 120, 1, 3600,                                                \
      "agent audio queued per stream at most (seconds); more is refused")                         \
    N(barge_in, "BARGE_IN", 1, 0, 1,                                                               \
      "the caller's speech or keys cut the agent short (0: agent speech cannot be interrupted)") \
    N(recordings, "RECORDINGS", 1, 0, 1, "write a WAV per call under DATA_DIR/recordings")         \
    N(recording_header_s, "RECORDING_HEADER_S", 5, 1, 3600,                                        \
      "rewrite recording headers this often (seconds), so a crash leaves playable files")          \
    N(recordings_low_disk_mb, "RECORDINGS_LOW_DISK_MB", 1024, 0, 100000000,                        \
      "warn (log, /status, /metrics) when the recordings' disk has less free, in MB (0: never)")   \
    N(max_connections, "MAX_CONNECTIONS", 20000, 1, 1000000, "open connections in total")          \
    N(max_connections_per_ip, "MAX_CONNECTIONS_PER_IP", 5000, 1, 1000000,                          \
      "open connections from one address")                                                         \
    N(max_heads_per_ip, "MAX_HEADS_PER_IP", 256, 1, 1000000,                                       \
      "connections from one address waiting for or reading a request head")                        \
    N(max_output_bytes, "MAX_OUTPUT_BYTES", 268435456, 65536, 1099511627776,                       \
      "output buffered for all connections together; past it the slowest readers are closed, "     \
      "listen-in sockets first (a write larger than it is refused at once)")                       \
    N(max_messages_per_s, "MAX_MESSAGES_PER_S", 400, 1, 100000,                                    \
      "media-socket messages per second per stream; more are counted and dropped")                 \
    N(max_message_bytes, "MAX_MESSAGE_BYTES", 65536, 1024, 16777216,                               \
      "largest WebSocket message; larger ones are counted and skipped")                            \
    N(max_body_bytes, "MAX_BODY_BYTES", 65536, 1024, 16777216, "largest HTTP request body")        \
    N(max_header_bytes, "MAX_HEADER_BYTES", 16384, 1024, 1048576, "largest HTTP request head")     \
    N(max_call_s, "MAX_CALL_S", 14400, 1, 86400, "a stream is ended after this many seconds")     \
    N(call_stream_token_s, "CALL_STREAM_TOKEN_S", 60, 5, 3600,                                     \
      "a stream created through the API expires unless its source connects within this (s)")    \
    N(call_stream_max_pending, "CALL_STREAM_MAX_PENDING", 64, 1, 100000,                           \
      "streams created through the API and waiting for their source, at most")                   \
    N(timestamp_tolerance_s, "TIMESTAMP_TOLERANCE_S", 10, 1, 3600,                                 \
      "a media timestamp this far ahead of its arrival, or back, is bad: placed by arrival")       \
    N(idle_timeout_s, "IDLE_TIMEOUT_S", 60, 1, 3600,                                               \
      "a media socket silent this long is ended as abnormal")                                      \
    N(http_idle_s, "HTTP_IDLE_S", 30, 1, 3600, "an idle keep-alive HTTP connection is closed")      \
    N(http_head_timeout_s, "HTTP_HEAD_TIMEOUT_S", 10, 1, 3600,                                     \
      "a request head must arrive whole this long after its first byte (TLS: after accept)")       \
    N(http_body_min_bytes_per_s, "HTTP_BODY_MIN_BYTES_PER_S", 1024, 0, 1073741824,                 \
      "a request body must average this rate after HTTP_HEAD_TIMEOUT_S of grace (0: no minimum)")  \
    N(shutdown_grace_s, "SHUTDOWN_GRACE_S", 10, 0, 3600,                                           \
      "on SIGTERM, how long calls may go on before they are closed")                               \
    N(monitor_slow_s, "MONITOR_SLOW_S", 30, 1, 3600,                                              \
      "a listen-in browser that cannot keep up for this long is disconnected")                    \
    N(session_ttl_s, "SESSION_TTL_S", 43200, 60, 31536000, "a sign-in lasts this many seconds")   \
    N(login_attempts_per_min, "LOGIN_ATTEMPTS_PER_MIN", 10, 1, 100000,                             \
      "sign-in attempts one address may make per minute")                                         \
    N(auth_cache_s, "AUTH_CACHE_S", 60, 1, 3600,                                                  \
      "sessions and API tokens are re-checked with the store this often (seconds): a revoked "    \
      "token or deleted user stops working, and its /monitor sockets close, within it")           \
    N(store_queue_max, "STORE_QUEUE_MAX", 100000, 100, 10000000,                                   \
      "store writes waiting; beyond it they spill to DATA_DIR/store-spill.jsonl")

typedef struct cs_config {
#define CS_CFG_S(field, env, def, help) char *field;
#define CS_CFG_N(field, env, def, min, max, help) int64_t field;
    CS_CONFIG_MAP(CS_CFG_S, CS_CFG_N)
#undef CS_CFG_S
#undef CS_CFG_N
    char *env_file; /* the .env read, or NULL */
} cs_config;

/* Fills `c` from defaults, `env_file` (NULL: "./.env" if present), the environment and
 * argv[*argi..argc) (flags "--name value" or "--name=value"; parsing stops at the first
 * argument that is not a flag, left at *argi). "--help" sets *help. On error returns
 * CS_ECONFIG with a message in `err`. Free with cs_config_free even on error. */
int cs_config_load(cs_config *c, const char *env_file, int argc, char **argv, int *argi,
                   int *help, cs_buf *err);
void cs_config_free(cs_config *c);
/* Prints every setting: flag, variable, default, help. */
void cs_config_usage(FILE *out);
/* Reads KEY=VALUE lines (optional "export ", quotes, # comments) and calls `fn` for each;
 * 0, or -errno if the file cannot be read. */
int cs_config_read_env_file(const char *path, void (*fn)(const char *k, const char *v, void *d),
                            void *data);

#endif
