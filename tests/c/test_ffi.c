/* C tests of libfastmcp_auth: every function, every result code, a callback store, the whole proxy flow against
 * the loopback mock identity provider (IDP_URL), RedisStore (REDIS_URL), 8 threads at once, a forced panic.
 * Built with -std=c11 -Wall -Wextra -Werror, linked to the shared and to the static library, run under valgrind
 * by ffi/tests/c.rs. Prints one line per check and closes with "N passed, N failed". */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fastmcp_auth.h"

static int passed = 0, failed = 0;

#define CHECK(cond, name)                                                                  \
  do {                                                                                     \
    if (cond) {                                                                            \
      passed++;                                                                            \
      printf("ok   %s\n", name);                                                          \
    } else {                                                                               \
      failed++;                                                                            \
      printf("FAIL %s (line %d; last error: %s)\n", name, __LINE__, fastmcp_auth_last_error()); \
    }                                                                                      \
  } while (0)

#define RC(call, expected, name) CHECK((call) == (expected), name)
#define OK FASTMCP_AUTH_RESULT_OK

static int contains(const char *hay, const char *needle) { return hay && strstr(hay, needle) != NULL; }

/* ---- a callback store: a tiny mutex-protected table owned by the C side -------------------------------------- */
#define SLOTS 64
typedef struct {
  pthread_mutex_t lock;
  char *keys[SLOTS];
  char *values[SLOTS];
  int freed;
} table;

static int find(table *t, const char *key) {
  for (int i = 0; i < SLOTS; i++)
    if (t->keys[i] && strcmp(t->keys[i], key) == 0) return i;
  return -1;
}

static uint32_t cb_save(void *ud, const char *key, const char *value_json, uint64_t ttl_ms) {
  (void)ttl_ms;
  table *t = ud;
  pthread_mutex_lock(&t->lock);
  int i = find(t, key);
  if (i < 0)
    for (i = 0; i < SLOTS && t->keys[i]; i++) {
    }
  if (i >= SLOTS) {
    pthread_mutex_unlock(&t->lock);
    return 7; /* full */
  }
  if (!t->keys[i]) t->keys[i] = strdup(key);
  free(t->values[i]);
  t->values[i] = strdup(value_json);
  pthread_mutex_unlock(&t->lock);
  return 0;
}

static uint32_t read_slot(void *ud, const char *key, fastmcp_auth_buffer *out, int remove) {
  table *t = ud;
  pthread_mutex_lock(&t->lock);
  int i = find(t, key);
  if (i >= 0) {
    fastmcp_auth_buffer_set(out, (const uint8_t *)t->values[i], strlen(t->values[i]));
    if (remove) {
      free(t->keys[i]);
      free(t->values[i]);
      t->keys[i] = t->values[i] = NULL;
    }
  }
  pthread_mutex_unlock(&t->lock);
  return 0;
}

static uint32_t cb_get(void *ud, const char *key, fastmcp_auth_buffer *out) { return read_slot(ud, key, out, 0); }
static uint32_t cb_take(void *ud, const char *key, fastmcp_auth_buffer *out) { return read_slot(ud, key, out, 1); }

static uint32_t cb_delete(void *ud, const char *key, bool *removed) {
  table *t = ud;
  pthread_mutex_lock(&t->lock);
  int i = find(t, key);
  *removed = i >= 0;
  if (i >= 0) {
    free(t->keys[i]);
    free(t->values[i]);
    t->keys[i] = t->values[i] = NULL;
  }
  pthread_mutex_unlock(&t->lock);
  return 0;
}

static uint32_t cb_fail_get(void *ud, const char *key, fastmcp_auth_buffer *out) {
  (void)ud, (void)key, (void)out;
  return 42;
}

static void cb_free(void *ud) {
  table *t = ud;
  for (int i = 0; i < SLOTS; i++) {
    free(t->keys[i]);
    free(t->values[i]);
    t->keys[i] = t->values[i] = NULL;
  }
  t->freed = 1;
}

/* ---- helpers ------------------------------------------------------------------------------------------------ */

/* The value of "name":"..." in a JSON text (no escapes in the values we read); malloc'd. */
static char *json_str(const char *json, const char *name) {
  char pat[128];
  snprintf(pat, sizeof pat, "\"%s\":\"", name);
  const char *p = json ? strstr(json, pat) : NULL;
  if (!p) return NULL;
  p += strlen(pat);
  const char *e = strchr(p, '"');
  return e ? strndup(p, (size_t)(e - p)) : NULL;
}

/* The value of a query parameter in a URL (percent-decoding not needed for our base64url values); malloc'd. */
static char *query_param(const char *url, const char *name) {
  char pat[64];
  snprintf(pat, sizeof pat, "%s=", name);
  const char *q = strchr(url, '?');
  while (q) {
    q++;
    if (strncmp(q, pat, strlen(pat)) == 0) {
      q += strlen(pat);
      size_t n = strcspn(q, "&\"");
      return strndup(q, n);
    }
    q = strchr(q, '&');
  }
  return NULL;
}

/* The browser at the mock provider: GET the URL over TCP, return the Location header (malloc'd). */
static char *http_get_location(const char *url) {
  int port = 0;
  char path[4096];
  if (sscanf(url, "http://127.0.0.1:%d%4095s", &port, path) != 2) return NULL;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return NULL;
  }
  char req[8192];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", path, port);
  if (write(fd, req, (size_t)n) != n) {
    close(fd);
    return NULL;
  }
  char resp[16384];
  size_t got = 0;
  ssize_t r;
  while (got < sizeof resp - 1 && (r = read(fd, resp + got, sizeof resp - 1 - got)) > 0) got += (size_t)r;
  resp[got] = 0;
  close(fd);
  char *loc = strstr(resp, "location: ");
  if (!loc) loc = strstr(resp, "Location: ");
  if (!loc) return NULL;
  loc += 10;
  return strndup(loc, strcspn(loc, "\r\n"));
}

/* ---- the checks --------------------------------------------------------------------------------------------- */

static void test_basics(void) {
  CHECK(strcmp(fastmcp_auth_version(), "0.1.0") == 0, "version");
  const uint32_t codes[] = {0, 100, 101, 102, 103, 104, 200, 201, 300, 301, 302, 303, 304, 305, 400, 900, 901, 999};
  const char *names[] = {"ok", "null_parameter", "invalid_utf8", "invalid_argument", "invalid_json", "invalid_key",
                         "invalid_token", "token_expired", "storage_io", "not_a_directory", "decrypt_failed",
                         "corrupt_data", "store_closed", "callback_failed", "oauth_error", "blocking_in_async",
                         "internal", "panic"};
  int all = 1;
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) all &= strcmp(fastmcp_auth_result_name(codes[i]), names[i]) == 0;
  CHECK(all, "result_name for every code");
  CHECK(strcmp(fastmcp_auth_result_name(12345), "internal") == 0, "result_name of an unknown number");
  RC(fastmcp_auth_test_panic(), FASTMCP_AUTH_RESULT_PANIC, "a panic is caught at the boundary");
  CHECK(contains(fastmcp_auth_last_error(), "panic"), "panic message");
  fastmcp_auth_string_free(NULL);
  fastmcp_auth_store_free(NULL);
  fastmcp_auth_jwt_issuer_free(NULL);
  fastmcp_auth_proxy_free(NULL);
  CHECK(1, "every _free(NULL) is a no-op");
}

static void test_keys_and_pkce(void) {
  char *k = NULL;
  RC(fastmcp_auth_derive_key((const uint8_t *)"secret", 6, 1000, &k), OK, "derive_key");
  CHECK(k && strcmp(k, "0azCaDgbB1X8gNjWeeez+OLi4U5cuHqOwkjmubrpHOE=") == 0, "derive_key matches fastmcp TS");
  fastmcp_auth_string_free(k);
  RC(fastmcp_auth_derive_key((const uint8_t *)"s", 1, 0, &k), FASTMCP_AUTH_RESULT_INVALID_ARGUMENT, "derive_key 0 iterations");
  RC(fastmcp_auth_derive_key(NULL, 3, 1, &k), FASTMCP_AUTH_RESULT_NULL_PARAMETER, "derive_key NULL secret");
  RC(fastmcp_auth_derive_key((const uint8_t *)"\xff\xfe", 2, 1, &k), FASTMCP_AUTH_RESULT_INVALID_UTF8, "derive_key invalid UTF-8");
  RC(fastmcp_auth_derive_jwt_key("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL, "fastmcp-jwt-signing-key", 0, &k), OK, "derive_jwt_key");
  CHECK(k && strcmp(k, "bZNjJTFMnfygulop1ftTP7ZkR6Vrlcsc8jVDXc4NhGQ=") == 0, "derive_jwt_key matches fastmcp Python");
  fastmcp_auth_string_free(k);
  RC(fastmcp_auth_derive_jwt_key("a", "b", "s", 0, &k), FASTMCP_AUTH_RESULT_INVALID_ARGUMENT, "derive_jwt_key both materials");
  RC(fastmcp_auth_derive_jwt_key(NULL, NULL, "s", 0, &k), FASTMCP_AUTH_RESULT_INVALID_ARGUMENT, "derive_jwt_key no material");
  char *v = NULL, *c = NULL;
  RC(fastmcp_auth_pkce_generate_verifier(64, &v), OK, "pkce verifier");
  CHECK(v && strlen(v) == 64, "pkce verifier length");
  RC(fastmcp_auth_pkce_generate_verifier(10, &c), FASTMCP_AUTH_RESULT_INVALID_ARGUMENT, "pkce verifier too short");
  RC(fastmcp_auth_pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "S256", &c), OK, "pkce challenge");
  CHECK(c && strcmp(c, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM") == 0, "pkce challenge matches RFC 7636");
  bool valid = false;
  RC(fastmcp_auth_pkce_validate("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", c, "S256", &valid), OK, "pkce validate");
  CHECK(valid, "pkce validates");
  RC(fastmcp_auth_pkce_validate(v, c, "S256", &valid), OK, "pkce validate other");
  CHECK(!valid, "pkce rejects another verifier");
  RC(fastmcp_auth_pkce_challenge(v, "S512", &k), FASTMCP_AUTH_RESULT_INVALID_ARGUMENT, "pkce unknown method");
  RC(fastmcp_auth_pkce_validate(v, c, "S256", NULL), FASTMCP_AUTH_RESULT_NULL_PARAMETER, "pkce NULL out");
  fastmcp_auth_string_free(v);
  fastmcp_auth_string_free(c);
}

static void test_jwt(void) {
  fastmcp_auth_jwt_issuer *ts = NULL, *py = NULL, *other = NULL, *fixed = NULL;
  RC(fastmcp_auth_jwt_issuer_new("https://i", "https://a", (const uint8_t *)"key", 3, NULL, &ts), OK, "issuer ts");
  RC(fastmcp_auth_jwt_issuer_new("https://i", "https://a", (const uint8_t *)"key", 3, "{\"layout\":\"py\"}", &py), OK, "issuer py");
  RC(fastmcp_auth_jwt_issuer_new("https://i", "https://a", (const uint8_t *)"nope", 4, NULL, &other), OK, "issuer other key");
  RC(fastmcp_auth_jwt_issuer_new("https://i", "https://a", (const uint8_t *)"key", 3, "{\"fixed_time\":1}", &fixed), OK, "issuer fixed time");
  fastmcp_auth_jwt_issuer *bad = NULL;
  RC(fastmcp_auth_jwt_issuer_new("https://i", "https://a", (const uint8_t *)"key", 3, "{\"layout\":\"xx\"}", &bad), FASTMCP_AUTH_RESULT_INVALID_ARGUMENT, "issuer bad layout");
  RC(fastmcp_auth_jwt_issuer_new("https://i", "https://a", (const uint8_t *)"key", 3, "{not json", &bad), FASTMCP_AUTH_RESULT_INVALID_JSON, "issuer bad JSON");
  RC(fastmcp_auth_jwt_issuer_new(NULL, "https://a", (const uint8_t *)"key", 3, NULL, &bad), FASTMCP_AUTH_RESULT_NULL_PARAMETER, "issuer NULL issuer");
  RC(fastmcp_auth_jwt_issuer_new("https://i", "https://a", NULL, 0, NULL, &bad), FASTMCP_AUTH_RESULT_INVALID_ARGUMENT, "issuer empty key");
  CHECK(bad == NULL, "no output on failure");

  char *t = NULL, *claims = NULL, *r = NULL;
  RC(fastmcp_auth_jwt_issuer_issue_access_token(ts, "client-1", "[\"read\",\"write\"]", "{\"extra_claims\":{\"email\":\"u@x\",\"iss\":\"evil\"}}", &t), OK, "issue access");
  RC(fastmcp_auth_jwt_issuer_verify(ts, t, FASTMCP_AUTH_TOKEN_ACCESS, &claims), OK, "verify access");
  CHECK(contains(claims, "\"scope\":[\"read\",\"write\"]") && contains(claims, "\"email\":\"u@x\"") && contains(claims, "\"iss\":\"https://i\""), "claims (reserved claims protected)");
  fastmcp_auth_string_free(claims);
  RC(fastmcp_auth_jwt_issuer_verify(other, t, FASTMCP_AUTH_TOKEN_ACCESS, &claims), FASTMCP_AUTH_RESULT_INVALID_TOKEN, "wrong key");
  CHECK(contains(fastmcp_auth_last_error(), "Invalid signature"), "wrong key reason");
  RC(fastmcp_auth_jwt_issuer_verify(ts, "a.b", FASTMCP_AUTH_TOKEN_ACCESS, &claims), FASTMCP_AUTH_RESULT_INVALID_TOKEN, "malformed token");
  RC(fastmcp_auth_jwt_issuer_verify(ts, t, 7, &claims), FASTMCP_AUTH_RESULT_INVALID_ARGUMENT, "bad token_use");
  RC(fastmcp_auth_jwt_issuer_verify_detailed(other, t, FASTMCP_AUTH_TOKEN_ACCESS, &r), OK, "verify_detailed");
  CHECK(contains(r, "\"valid\":false") && contains(r, "invalid_signature"), "verify_detailed reason");
  fastmcp_auth_string_free(r);
  fastmcp_auth_string_free(t);

  RC(fastmcp_auth_jwt_issuer_issue_refresh_token(py, "c", "[\"a\"]", "{\"jti\":\"j1\"}", &t), OK, "issue refresh py");
  RC(fastmcp_auth_jwt_issuer_verify(py, t, FASTMCP_AUTH_TOKEN_ACCESS, &claims), FASTMCP_AUTH_RESULT_INVALID_TOKEN, "py refresh is not access");
  RC(fastmcp_auth_jwt_issuer_verify(py, t, FASTMCP_AUTH_TOKEN_REFRESH, &claims), OK, "py refresh verifies as refresh");
  CHECK(contains(claims, "\"token_use\":\"refresh\"") && contains(claims, "\"scope\":\"a\"") && contains(claims, "\"jti\":\"j1\""), "py layout");
  fastmcp_auth_string_free(claims);
  fastmcp_auth_string_free(t);

  RC(fastmcp_auth_jwt_issuer_issue_access_token(fixed, "c", NULL, "{\"expires_in\":10}", &t), OK, "issue at a fixed time");
  RC(fastmcp_auth_jwt_issuer_verify(ts, t, FASTMCP_AUTH_TOKEN_ACCESS, &claims), FASTMCP_AUTH_RESULT_TOKEN_EXPIRED, "expired token");
  RC(fastmcp_auth_jwt_issuer_issue_access_token(ts, "c", "{\"no\":1}", NULL, &r), FASTMCP_AUTH_RESULT_INVALID_JSON, "scopes must be an array");
  RC(fastmcp_auth_jwt_issuer_issue_access_token(ts, "c", NULL, "{\"bogus\":1}", &r), FASTMCP_AUTH_RESULT_INVALID_ARGUMENT, "unknown issue option");
  RC(fastmcp_auth_jwt_issuer_issue_access_token(NULL, "c", NULL, NULL, &r), FASTMCP_AUTH_RESULT_NULL_PARAMETER, "NULL issuer");
  RC(fastmcp_auth_jwt_issuer_issue_access_token(ts, "c", NULL, NULL, NULL), FASTMCP_AUTH_RESULT_NULL_PARAMETER, "NULL token_out");
  fastmcp_auth_string_free(t);
  fastmcp_auth_jwt_issuer_free(ts);
  fastmcp_auth_jwt_issuer_free(py);
  fastmcp_auth_jwt_issuer_free(other);
  fastmcp_auth_jwt_issuer_free(fixed);
}

static void store_suite(fastmcp_auth_store *s, const char *name) {
  char label[128], *v = NULL;
  bool removed = false;
  uint64_t n = 0;
#define L(x) (snprintf(label, sizeof label, "%s: %s", name, x), label)
  RC(fastmcp_auth_store_save(s, "mapping:abc", "{\"a\":[1,2]}", 0), OK, L("save"));
  RC(fastmcp_auth_store_get(s, "mapping:abc", &v), OK, L("get"));
  CHECK(v && strcmp(v, "{\"a\":[1,2]}") == 0, L("get value"));
  fastmcp_auth_string_free(v);
  RC(fastmcp_auth_store_get(s, "missing", &v), OK, L("get missing"));
  CHECK(v == NULL, L("missing is NULL"));
  RC(fastmcp_auth_store_take(s, "mapping:abc", &v), OK, L("take"));
  CHECK(v != NULL, L("take value"));
  fastmcp_auth_string_free(v);
  RC(fastmcp_auth_store_take(s, "mapping:abc", &v), OK, L("take again"));
  CHECK(v == NULL, L("take is single use"));
  RC(fastmcp_auth_store_save(s, "k", "1", 60000), OK, L("save with ttl"));
  RC(fastmcp_auth_store_delete(s, "k", &removed), OK, L("delete"));
  CHECK(removed, L("delete removed"));
  RC(fastmcp_auth_store_delete(s, "k", NULL), OK, L("delete again, NULL out"));
  RC(fastmcp_auth_store_cleanup(s, &n), OK, L("cleanup"));
  RC(fastmcp_auth_store_save(s, "", "1", 0), FASTMCP_AUTH_RESULT_INVALID_KEY, L("empty key"));
  RC(fastmcp_auth_store_save(s, "../../etc/passwd", "1", 0), OK, L("traversal key is just a key"));
  RC(fastmcp_auth_store_get(s, "../../etc/passwd", &v), OK, L("traversal key reads back"));
  fastmcp_auth_string_free(v);
  RC(fastmcp_auth_store_save(s, "k", "{bad", 0), FASTMCP_AUTH_RESULT_INVALID_JSON, L("bad JSON"));
  RC(fastmcp_auth_store_save(s, "\xff", "1", 0), FASTMCP_AUTH_RESULT_INVALID_UTF8, L("invalid UTF-8 key"));
  RC(fastmcp_auth_store_save(NULL, "k", "1", 0), FASTMCP_AUTH_RESULT_NULL_PARAMETER, L("NULL store"));
  RC(fastmcp_auth_store_get(s, "k", NULL), FASTMCP_AUTH_RESULT_NULL_PARAMETER, L("NULL out"));
#undef L
}

static void test_stores(const char *redis_url) {
  fastmcp_auth_store *mem = NULL, *disk = NULL, *enc = NULL, *wrong = NULL, *bad = NULL;
  RC(fastmcp_auth_store_new_memory(0, &mem), OK, "memory store");
  store_suite(mem, "memory");
  char dir[] = "/tmp/fastmcp-auth-c-XXXXXX";
  CHECK(mkdtemp(dir) != NULL, "temp dir");
  char sub[300];
  snprintf(sub, sizeof sub, "%s/store", dir);
  RC(fastmcp_auth_store_new_disk(sub, 0, NULL, false, &disk), OK, "disk store");
  store_suite(disk, "disk");
  uint64_t n = 0;
  char *keys = NULL;
  RC(fastmcp_auth_store_size(disk, &n), OK, "disk size");
  CHECK(n == 1, "disk size value");
  RC(fastmcp_auth_store_keys(disk, &keys), OK, "disk keys");
  CHECK(keys && strcmp(keys, "[\"../../etc/passwd\"]") == 0, "disk keys value");
  fastmcp_auth_string_free(keys);
  char file[400];
  snprintf(file, sizeof file, "%s/file", dir);
  FILE *f = fopen(file, "w");
  if (f) fclose(f);
  RC(fastmcp_auth_store_new_disk(file, 0, NULL, false, &bad), FASTMCP_AUTH_RESULT_NOT_A_DIRECTORY, "disk on a file");
  RC(fastmcp_auth_store_new_disk(sub, 0, "json", false, &bad), FASTMCP_AUTH_RESULT_INVALID_ARGUMENT, "bad extension");
  RC(fastmcp_auth_store_new_encrypted(disk, "enc-key", "[\"old\"]", &enc), OK, "encrypted over disk");
  store_suite(enc, "encrypted");
  RC(fastmcp_auth_store_save(enc, "secret", "{\"accessToken\":\"at\"}", 0), OK, "encrypted save");
  char *raw = NULL, *v = NULL;
  RC(fastmcp_auth_store_get(disk, "secret", &raw), OK, "raw read");
  CHECK(raw && !contains(raw, "accessToken"), "stored encrypted");
  fastmcp_auth_string_free(raw);
  RC(fastmcp_auth_store_new_encrypted(disk, "other", NULL, &wrong), OK, "encrypted wrong key");
  RC(fastmcp_auth_store_get(wrong, "secret", &v), OK, "wrong key reads");
  CHECK(v == NULL, "wrong key reads as absent");
  RC(fastmcp_auth_store_new_encrypted(disk, "k", "{\"x\":1}", &bad), FASTMCP_AUTH_RESULT_INVALID_JSON, "previous keys must be an array");
  RC(fastmcp_auth_store_close(mem), OK, "close");
  RC(fastmcp_auth_store_save(mem, "k", "1", 0), FASTMCP_AUTH_RESULT_CLOSED, "closed store");
  fastmcp_auth_store_free(wrong);
  fastmcp_auth_store_free(enc);
  fastmcp_auth_store_free(disk);
  fastmcp_auth_store_free(mem);

  /* A store made of C callbacks, also under encryption. */
  static table t = {.lock = PTHREAD_MUTEX_INITIALIZER};
  fastmcp_auth_store_callbacks cb = {&t, cb_save, cb_get, cb_delete, cb_take, NULL, cb_free};
  fastmcp_auth_store *cs = NULL, *ecs = NULL;
  RC(fastmcp_auth_store_new_callbacks(&cb, &cs), OK, "callback store");
  store_suite(cs, "callbacks");
  RC(fastmcp_auth_store_new_encrypted(cs, "k", NULL, &ecs), OK, "encrypted callback store");
  store_suite(ecs, "encrypted callbacks");
  RC(fastmcp_auth_store_size(cs, &n), FASTMCP_AUTH_RESULT_INVALID_ARGUMENT, "callback store cannot count");
  fastmcp_auth_store_free(ecs);
  fastmcp_auth_store_free(cs);
  CHECK(t.freed, "free_userdata called once the last handle is gone");
  fastmcp_auth_store_callbacks failing = {NULL, cb_save, cb_fail_get, cb_delete, cb_take, NULL, NULL};
  RC(fastmcp_auth_store_new_callbacks(&failing, &cs), OK, "failing callback store");
  RC(fastmcp_auth_store_get(cs, "k", &v), FASTMCP_AUTH_RESULT_CALLBACK_FAILED, "callback failure code");
  CHECK(contains(fastmcp_auth_last_error(), "42"), "callback failure message");
  fastmcp_auth_store_free(cs);
  fastmcp_auth_store_callbacks incomplete = {NULL, cb_save, NULL, NULL, NULL, NULL, NULL};
  RC(fastmcp_auth_store_new_callbacks(&incomplete, &cs), FASTMCP_AUTH_RESULT_INVALID_ARGUMENT, "incomplete callbacks");
  RC(fastmcp_auth_store_new_callbacks(NULL, &cs), FASTMCP_AUTH_RESULT_NULL_PARAMETER, "NULL callbacks");

  if (redis_url) {
    fastmcp_auth_store *r = NULL;
    RC(fastmcp_auth_store_new_redis(redis_url, "c-test:", &r), OK, "redis store");
    store_suite(r, "redis");
    fastmcp_auth_store_free(r);
    RC(fastmcp_auth_store_new_redis("not a url", NULL, &r), FASTMCP_AUTH_RESULT_INVALID_ARGUMENT, "redis bad URL");
  }
}

/* ---- 8 threads at once -------------------------------------------------------------------------------------- */
typedef struct {
  fastmcp_auth_store *store;
  fastmcp_auth_jwt_issuer *issuer;
  const char *token;
  pthread_barrier_t *barrier;
  int wins;
  int verified;
} worker;

static void *work(void *arg) {
  worker *w = arg;
  for (int round = 0; round < 20; round++) {
    char key[32];
    snprintf(key, sizeof key, "code:%d", round);
    pthread_barrier_wait(w->barrier);
    char *v = NULL;
    if (fastmcp_auth_store_take(w->store, key, &v) == OK && v) {
      w->wins++;
      fastmcp_auth_string_free(v);
    }
    char *claims = NULL;
    if (fastmcp_auth_jwt_issuer_verify(w->issuer, w->token, FASTMCP_AUTH_TOKEN_ACCESS, &claims) == OK) w->verified++;
    fastmcp_auth_string_free(claims);
    pthread_barrier_wait(w->barrier);
  }
  return NULL;
}

static void test_threads(void) {
  fastmcp_auth_store *s = NULL;
  fastmcp_auth_jwt_issuer *iss = NULL;
  char *tok = NULL;
  fastmcp_auth_store_new_memory(0, &s);
  fastmcp_auth_jwt_issuer_new("i", "a", (const uint8_t *)"k", 1, NULL, &iss);
  fastmcp_auth_jwt_issuer_issue_access_token(iss, "c", NULL, NULL, &tok);
  for (int round = 0; round < 20; round++) {
    char key[32];
    snprintf(key, sizeof key, "code:%d", round);
    fastmcp_auth_store_save(s, key, "true", 0);
  }
  pthread_barrier_t barrier;
  pthread_barrier_init(&barrier, NULL, 8);
  pthread_t th[8];
  worker w[8];
  for (int i = 0; i < 8; i++) {
    w[i] = (worker){s, iss, tok, &barrier, 0, 0};
    pthread_create(&th[i], NULL, work, &w[i]);
  }
  int wins = 0, verified = 0;
  for (int i = 0; i < 8; i++) {
    pthread_join(th[i], NULL);
    wins += w[i].wins;
    verified += w[i].verified;
  }
  pthread_barrier_destroy(&barrier);
  CHECK(wins == 20, "8 threads: each code taken exactly once");
  CHECK(verified == 160, "8 threads: every verify succeeds");
  fastmcp_auth_string_free(tok);
  fastmcp_auth_jwt_issuer_free(iss);
  fastmcp_auth_store_free(s);
}

/* ---- the whole proxy flow ----------------------------------------------------------------------------------- */
static void test_proxy(const char *idp) {
  char config[2048];
  snprintf(config, sizeof config,
           "{\"base_url\":\"http://127.0.0.1:8000\",\"upstream_authorization_endpoint\":\"%s/authorize\","
           "\"upstream_token_endpoint\":\"%s/token\",\"upstream_client_id\":\"upstream-client\","
           "\"upstream_client_secret\":\"upstream secret+/=\",\"jwt_signing_key\":\"c-jwt-key\","
           "\"encryption_key\":\"c-enc-key\"}",
           idp, idp);
  fastmcp_auth_store *mem = NULL;
  fastmcp_auth_proxy *p = NULL, *bad = NULL;
  fastmcp_auth_store_new_memory(0, &mem);
  RC(fastmcp_auth_proxy_new(config, mem, &p), OK, "proxy new");
  RC(fastmcp_auth_proxy_new("{\"base_url\":\"x\"}", NULL, &bad), FASTMCP_AUTH_RESULT_INVALID_ARGUMENT, "proxy bad config");
  RC(fastmcp_auth_proxy_new("[", NULL, &bad), FASTMCP_AUTH_RESULT_INVALID_JSON, "proxy config not JSON");
  char *reg = NULL, *meta = NULL;
  RC(fastmcp_auth_proxy_metadata(p, &meta), OK, "metadata");
  CHECK(contains(meta, "\"token_endpoint\":\"http://127.0.0.1:8000/oauth/token\""), "metadata content");
  fastmcp_auth_string_free(meta);
  RC(fastmcp_auth_proxy_register_client(p, "{\"redirect_uris\":[\"https://evil.example/cb\"]}", &reg), FASTMCP_AUTH_RESULT_OAUTH_ERROR, "open redirect refused");
  CHECK(contains(fastmcp_auth_last_error(), "\"error\":\"invalid_redirect_uri\"") && contains(fastmcp_auth_last_error(), "\"status\":400"), "OAuth error JSON");
  RC(fastmcp_auth_proxy_register_client(p, "{\"redirect_uris\":[\"http://127.0.0.1:33418/cb\"]}", &reg), OK, "register");
  char *client_id = json_str(reg, "client_id"), *secret = json_str(reg, "client_secret");
  CHECK(client_id && secret, "registration has id and secret");
  char *verifier = NULL, *challenge = NULL, *page = NULL, *up = NULL, *back = NULL, *tokens = NULL;
  fastmcp_auth_pkce_generate_verifier(64, &verifier);
  fastmcp_auth_pkce_challenge(verifier, "S256", &challenge);
  char query[1024];
  snprintf(query, sizeof query,
           "client_id=%s&redirect_uri=http%%3A%%2F%%2F127.0.0.1%%3A33418%%2Fcb&response_type=code&state=st&"
           "code_challenge=%s&code_challenge_method=S256",
           client_id, challenge);
  RC(fastmcp_auth_proxy_authorize(p, query, NULL, &page), OK, "authorize");
  CHECK(contains(page, "\"status\":200"), "consent page");
  const char *tx_at = page ? strstr(page, "transaction_id\\\" value=\\\"") : NULL;
  char tx[128] = {0}, csrf[128] = {0}, jar[256] = {0}, other_jar[256] = {0};
  if (tx_at) sscanf(tx_at + strlen("transaction_id\\\" value=\\\""), "%127[^\\]", tx);
  const char *csrf_at = page ? strstr(page, "csrf_token\\\" value=\\\"") : NULL;
  if (csrf_at) sscanf(csrf_at + strlen("csrf_token\\\" value=\\\""), "%127[^\\]", csrf);
  /* The browser's jar: the name=value of the Set-Cookie header. */
  const char *sc = page ? strstr(page, "[\"Set-Cookie\",\"") : NULL;
  if (sc) sscanf(sc + strlen("[\"Set-Cookie\",\""), "%255[^;\"]", jar);
  CHECK(strncmp(jar, "fastmcp_auth_browser=", 21) == 0 && csrf[0], "browser-binding cookie and CSRF token");
  char form[512];
  /* The attacker's form alone (no token), or the token without this browser's cookie: 403, nothing approved. */
  int form_len = snprintf(form, sizeof form, "transaction_id=%s&action=approve", tx);
  RC(fastmcp_auth_proxy_handle_consent(p, (const uint8_t *)form, (size_t)form_len, jar, &up), OK, "consent without token");
  CHECK(contains(up, "\"status\":403") && !contains(up, "Location"), "consent without CSRF token refused");
  fastmcp_auth_string_free(up);
  form_len = snprintf(form, sizeof form, "transaction_id=%s&action=approve&csrf_token=%s", tx, csrf);
  RC(fastmcp_auth_proxy_handle_consent(p, (const uint8_t *)form, (size_t)form_len, NULL, &up), OK, "consent without cookie");
  CHECK(contains(up, "\"status\":403"), "consent without the browser cookie refused");
  fastmcp_auth_string_free(up);
  RC(fastmcp_auth_proxy_handle_consent(p, (const uint8_t *)form, (size_t)form_len, jar, &up), OK, "consent");
  const char *ul = up ? strstr(up, "[\"Location\",\"") : NULL;
  char *upstream_url = ul ? strndup(ul + 13, strcspn(ul + 13, "\"")) : NULL;
  CHECK(upstream_url && contains(upstream_url, "/authorize?"), "redirect to upstream");
  char *callback = upstream_url ? http_get_location(upstream_url) : NULL;
  CHECK(callback && contains(callback, "/oauth/callback?"), "upstream login redirects to our callback");
  const char *cq = callback ? strchr(callback, '?') : NULL;
  /* Another browser (the victim of a forwarded login link) following the callback: 403, the transaction dies. */
  snprintf(other_jar, sizeof other_jar, "fastmcp_auth_browser=%s", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
  RC(fastmcp_auth_proxy_handle_callback(p, cq ? cq + 1 : "", other_jar, &back), OK, "callback in another browser");
  CHECK(contains(back, "\"status\":403") && !contains(back, "Location"), "callback in another browser refused");
  fastmcp_auth_string_free(back);
  RC(fastmcp_auth_proxy_handle_callback(p, cq ? cq + 1 : "", jar, &back), FASTMCP_AUTH_RESULT_OAUTH_ERROR, "refused transaction is dead");
  /* A fresh login in the right browser. */
  fastmcp_auth_string_free(page), fastmcp_auth_string_free(up), free(upstream_url), free(callback);
  RC(fastmcp_auth_proxy_authorize(p, query, jar, &page), OK, "authorize again");
  CHECK(contains(page, jar), "the same browser keeps its id");
  csrf_at = page ? strstr(page, "csrf_token\\\" value=\\\"") : NULL;
  tx_at = page ? strstr(page, "transaction_id\\\" value=\\\"") : NULL;
  if (csrf_at) sscanf(csrf_at + strlen("csrf_token\\\" value=\\\""), "%127[^\\]", csrf);
  if (tx_at) sscanf(tx_at + strlen("transaction_id\\\" value=\\\""), "%127[^\\]", tx);
  form_len = snprintf(form, sizeof form, "transaction_id=%s&action=approve&csrf_token=%s", tx, csrf);
  RC(fastmcp_auth_proxy_handle_consent(p, (const uint8_t *)form, (size_t)form_len, jar, &up), OK, "consent again");
  ul = up ? strstr(up, "[\"Location\",\"") : NULL;
  upstream_url = ul ? strndup(ul + 13, strcspn(ul + 13, "\"")) : NULL;
  callback = upstream_url ? http_get_location(upstream_url) : NULL;
  cq = callback ? strchr(callback, '?') : NULL;
  RC(fastmcp_auth_proxy_handle_callback(p, cq ? cq + 1 : "", jar, &back), OK, "callback");
  const char *bl = back ? strstr(back, "[\"Location\",\"") : NULL;
  char *to_client = bl ? strndup(bl + 13, strcspn(bl + 13, "\"")) : NULL;
  char *code = to_client ? query_param(to_client, "code") : NULL;
  CHECK(code != NULL, "code for the client");
  char body[2048];
  int body_len = snprintf(body, sizeof body, "grant_type=authorization_code&code=%s&code_verifier=%s&client_id=%s&client_secret=%s", code, verifier, client_id, secret);
  RC(fastmcp_auth_proxy_token(p, (const uint8_t *)body, (size_t)body_len, NULL, &tokens), OK, "code exchange");
  char *access = json_str(tokens, "access_token"), *refresh = json_str(tokens, "refresh_token");
  /* The resource-server half: RFC 9728 metadata and the bearer check's challenge or verdict. */
  char *prm = NULL, *verdict = NULL, bearer[4096];
  RC(fastmcp_auth_proxy_protected_resource_metadata(p, "http://127.0.0.1:8000/mcp", &prm), OK, "protected resource metadata");
  CHECK(contains(prm, "\"authorization_servers\":[\"http://127.0.0.1:8000\"]"), "metadata names the authorization server");
  fastmcp_auth_string_free(prm);
  RC(fastmcp_auth_proxy_check_bearer(p, NULL, "http://127.0.0.1:8000/mcp", NULL, &verdict), OK, "bearer check without a token");
  CHECK(contains(verdict, "\"authorized\":false") && contains(verdict, "\"status\":401") &&
            contains(verdict, "resource_metadata=\\\"http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp\\\""),
        "401 with the resource_metadata challenge");
  fastmcp_auth_string_free(verdict);
  snprintf(bearer, sizeof bearer, "Bearer %s", access ? access : "");
  RC(fastmcp_auth_proxy_check_bearer(p, bearer, "http://127.0.0.1:8000/mcp", "[\"openid\"]", &verdict), OK, "bearer check");
  CHECK(contains(verdict, "\"authorized\":true") && contains(verdict, "\"accessToken\":\"up-at-"), "bearer accepted");
  fastmcp_auth_string_free(verdict);
  RC(fastmcp_auth_proxy_check_bearer(p, bearer, "http://127.0.0.1:8000/mcp", "[\"admin\"]", &verdict), OK, "bearer check, scope");
  CHECK(contains(verdict, "\"status\":403") && contains(verdict, "insufficient_scope"), "403 insufficient_scope");
  fastmcp_auth_string_free(verdict);
  RC(fastmcp_auth_proxy_check_bearer(p, bearer, "http://127.0.0.1:8000/mcp", "{", &verdict), FASTMCP_AUTH_RESULT_INVALID_JSON, "bad scopes JSON");
  char *upstream = NULL, *rotated = NULL;
  RC(fastmcp_auth_proxy_load_upstream_tokens(p, access, &upstream), OK, "load_upstream_tokens");
  CHECK(contains(upstream, "\"accessToken\":\"up-at-"), "upstream tokens");
  fastmcp_auth_string_free(upstream);
  body_len = snprintf(body, sizeof body, "grant_type=refresh_token&refresh_token=%s&client_id=%s&client_secret=%s", refresh, client_id, secret);
  RC(fastmcp_auth_proxy_exchange_refresh_token(p, (const uint8_t *)body, (size_t)body_len, NULL, &rotated), OK, "refresh");
  char *new_refresh = json_str(rotated, "refresh_token");
  CHECK(new_refresh && refresh && strcmp(new_refresh, refresh) != 0, "refresh token rotated");
  RC(fastmcp_auth_proxy_revoke(p, new_refresh, client_id, secret), OK, "revoke");
  RC(fastmcp_auth_proxy_load_upstream_tokens(p, access, &upstream), OK, "load after revoke");
  CHECK(upstream == NULL, "revoked grant loads nothing");
  /* The code presented again (after its grant ended): refused (a replay also revokes the grant it yielded). */
  body_len = snprintf(body, sizeof body, "grant_type=authorization_code&code=%s&code_verifier=%s&client_id=%s&client_secret=%s", code, verifier, client_id, secret);
  RC(fastmcp_auth_proxy_exchange_authorization_code(p, (const uint8_t *)body, (size_t)body_len, NULL, &reg), FASTMCP_AUTH_RESULT_OAUTH_ERROR, "code replay");
  CHECK(contains(fastmcp_auth_last_error(), "already used"), "code replay reported");
  RC(fastmcp_auth_proxy_revoke(p, "x", "unknown-client", NULL), FASTMCP_AUTH_RESULT_OAUTH_ERROR, "revoke unknown client");
  RC(fastmcp_auth_proxy_handle_callback(p, "state=nope&code=x", NULL, &back), FASTMCP_AUTH_RESULT_OAUTH_ERROR, "callback bad state");
  RC(fastmcp_auth_proxy_token(p, (const uint8_t *)"grant_type=password", 19, NULL, &reg), FASTMCP_AUTH_RESULT_OAUTH_ERROR, "unsupported grant");
  CHECK(contains(fastmcp_auth_last_error(), "unsupported_grant_type"), "unsupported grant code");
  RC(fastmcp_auth_proxy_authorize(NULL, "", NULL, &page), FASTMCP_AUTH_RESULT_NULL_PARAMETER, "NULL proxy");
  free(client_id), free(secret), free(upstream_url), free(callback), free(to_client), free(code), free(access), free(refresh), free(new_refresh);
  fastmcp_auth_string_free(verifier), fastmcp_auth_string_free(challenge), fastmcp_auth_string_free(page);
  fastmcp_auth_string_free(up), fastmcp_auth_string_free(back), fastmcp_auth_string_free(tokens);
  fastmcp_auth_string_free(rotated), fastmcp_auth_string_free(reg);
  fastmcp_auth_proxy_free(p);
  fastmcp_auth_store_free(mem);
}

/* Rate limits through the C calls (which take no caller address: registrations share one limit): 429 with
 * "retry_after" in the last error's JSON. */
static void test_rate_limits(void) {
  fastmcp_auth_proxy *p = NULL;
  RC(fastmcp_auth_proxy_new("{\"base_url\":\"http://127.0.0.1:8000\",\"upstream_authorization_endpoint\":\"http://127.0.0.1:9/a\","
                            "\"upstream_token_endpoint\":\"http://127.0.0.1:9/t\",\"upstream_client_id\":\"c\","
                            "\"rate_limits\":{\"register\":{\"per_minute\":60,\"burst\":2}}}",
                            NULL, &p),
     OK, "rate-limited proxy new");
  char *reg = NULL;
  const char *request = "{\"redirect_uris\":[\"http://127.0.0.1:33418/cb\"],\"token_endpoint_auth_method\":\"none\"}";
  for (int i = 0; i < 2; i++) {
    RC(fastmcp_auth_proxy_register_client(p, request, &reg), OK, "registration within the limit");
    fastmcp_auth_string_free(reg);
  }
  RC(fastmcp_auth_proxy_register_client(p, request, &reg), FASTMCP_AUTH_RESULT_OAUTH_ERROR, "registration over the limit");
  const char *e = fastmcp_auth_last_error();
  CHECK(contains(e, "\"status\":429") && contains(e, "\"retry_after\":") && contains(e, "temporarily_unavailable"),
        "429 with retry_after");
  /* Readiness and the production checklist (this config sets no keys: two findings, named, no values). */
  char *health = NULL, *warnings = NULL;
  RC(fastmcp_auth_proxy_health(p, 1000, &health), OK, "health");
  CHECK(contains(health, "\"ok\":true") && contains(health, "\"store\":\"ok\""), "store healthy");
  RC(fastmcp_auth_proxy_config_warnings(p, &warnings), OK, "config warnings");
  CHECK(contains(warnings, "jwt_signing_key is not set") && contains(warnings, "encryption_key is not set"), "findings named");
  fastmcp_auth_string_free(health), fastmcp_auth_string_free(warnings);
  RC(fastmcp_auth_proxy_health(NULL, 0, &health), FASTMCP_AUTH_RESULT_NULL_PARAMETER, "health of NULL");
  char *metrics = NULL;
  RC(fastmcp_auth_proxy_metrics(p, &metrics), OK, "metrics");
  CHECK(contains(metrics, "fastmcp_auth_registrations_total 2") && contains(metrics, "fastmcp_auth_rate_limited_total{endpoint=\"register\"} 1"),
        "metrics count the registrations and the refusal");
  fastmcp_auth_string_free(metrics);
  fastmcp_auth_proxy_free(p);
  fastmcp_auth_proxy *strict = NULL;
  RC(fastmcp_auth_proxy_new("{\"base_url\":\"http://mcp.example.com\",\"upstream_authorization_endpoint\":\"https://i.example/a\","
                            "\"upstream_token_endpoint\":\"https://i.example/t\",\"upstream_client_id\":\"c\",\"strict\":true}",
                            NULL, &strict),
     FASTMCP_AUTH_RESULT_INVALID_ARGUMENT, "strict refuses");
  CHECK(contains(fastmcp_auth_last_error(), "strict: ") && contains(fastmcp_auth_last_error(), "base_url is plain http"),
        "strict names the findings");
}

/* `text` as the inside of a JSON string (the CA's PEM has newlines). The caller frees. */
static char *json_escape(const char *text) {
  size_t n = strlen(text);
  char *out = malloc(2 * n + 1), *o = out;
  for (const char *c = text; *c; c++) {
    if (*c == '\n') *o++ = '\\', *o++ = 'n';
    else if (*c == '"' || *c == '\\') *o++ = '\\', *o++ = *c;
    else if (*c != '\r') *o++ = *c;
  }
  *o = 0;
  return out;
}

/* Client ID Metadata Documents through the C calls: the doc host (HTTPS, its own CA, trusted through the
 * config), every hostile document refused with its error, a URL client's whole login with refresh. `hostile`:
 * lines of "name<TAB>error fragment". */
static void test_cimd(const char *idp, const char *doc_base, const char *ca_pem, const char *hostile) {
  char *ca = json_escape(ca_pem);
  size_t config_len = strlen(ca) + 2048;
  char *config = malloc(config_len);
  snprintf(config, config_len,
           "{\"base_url\":\"http://127.0.0.1:8000\",\"upstream_authorization_endpoint\":\"%s/authorize\","
           "\"upstream_token_endpoint\":\"%s/token\",\"upstream_client_id\":\"upstream-client\","
           "\"upstream_client_secret\":\"upstream secret+/=\",\"jwt_signing_key\":\"c-jwt-key\","
           "\"encryption_key\":\"c-enc-key\",\"cimd\":{\"allow_private_networks_for_testing\":true,"
           "\"extra_root_certificates_pem\":[\"%s\"],\"fetch_timeout\":2,\"failure_cooldown\":0}}",
           idp, idp, ca);
  fastmcp_auth_proxy *p = NULL, *bad = NULL;
  RC(fastmcp_auth_proxy_new(config, NULL, &p), OK, "cimd proxy new");
  RC(fastmcp_auth_proxy_new("{\"base_url\":\"http://127.0.0.1:8000\",\"upstream_authorization_endpoint\":\"http://127.0.0.1:9/a\","
                            "\"upstream_token_endpoint\":\"http://127.0.0.1:9/t\",\"upstream_client_id\":\"c\","
                            "\"cimd\":{\"allow_private_networks\":true}}",
                            NULL, &bad),
     FASTMCP_AUTH_RESULT_INVALID_ARGUMENT, "unknown cimd option");
  CHECK(contains(fastmcp_auth_last_error(), "cimd.allow_private_networks"), "unknown cimd option named");
  char *meta = NULL;
  RC(fastmcp_auth_proxy_metadata(p, &meta), OK, "cimd metadata");
  CHECK(contains(meta, "\"client_id_metadata_document_supported\":true"), "CIMD advertised");
  fastmcp_auth_string_free(meta);
  char *verifier = NULL, *challenge = NULL, *page = NULL, query[2048];
  fastmcp_auth_pkce_generate_verifier(64, &verifier);
  fastmcp_auth_pkce_challenge(verifier, "S256", &challenge);
  /* Every hostile document: an OAuth error naming what is wrong. */
  char line[512];
  for (const char *h = hostile; h && *h;) {
    size_t len = strcspn(h, "\n");
    snprintf(line, sizeof line, "%.*s", (int)len, h);
    h += len + (h[len] == '\n');
    char *tab = strchr(line, '\t');
    if (!tab) continue;
    *tab = 0;
    snprintf(query, sizeof query,
             "client_id=%s/%s&redirect_uri=http%%3A%%2F%%2F127.0.0.1%%3A41234%%2Fcallback&response_type=code&"
             "code_challenge=%s&code_challenge_method=S256",
             doc_base, line, challenge);
    char what[600];
    snprintf(what, sizeof what, "hostile document %s refused", line);
    RC(fastmcp_auth_proxy_authorize(p, query, NULL, &page), FASTMCP_AUTH_RESULT_OAUTH_ERROR, what);
    CHECK(contains(fastmcp_auth_last_error(), tab + 1), what);
  }
  /* A good document: the whole login, the refresh, the revocation. */
  snprintf(query, sizeof query,
           "client_id=%s/good.json&redirect_uri=http%%3A%%2F%%2F127.0.0.1%%3A41234%%2Fcallback&response_type=code&"
           "state=st&code_challenge=%s&code_challenge_method=S256",
           doc_base, challenge);
  RC(fastmcp_auth_proxy_authorize(p, query, NULL, &page), OK, "cimd authorize");
  CHECK(contains(page, "published by <strong>localhost</strong>"), "consent page names the client's host");
  char tx[128] = {0}, csrf[128] = {0}, jar[256] = {0}, form[512], body[4096];
  const char *at = page ? strstr(page, "transaction_id\\\" value=\\\"") : NULL;
  if (at) sscanf(at + strlen("transaction_id\\\" value=\\\""), "%127[^\\]", tx);
  at = page ? strstr(page, "csrf_token\\\" value=\\\"") : NULL;
  if (at) sscanf(at + strlen("csrf_token\\\" value=\\\""), "%127[^\\]", csrf);
  at = page ? strstr(page, "[\"Set-Cookie\",\"") : NULL;
  if (at) sscanf(at + strlen("[\"Set-Cookie\",\""), "%255[^;\"]", jar);
  int form_len = snprintf(form, sizeof form, "transaction_id=%s&action=approve&csrf_token=%s", tx, csrf);
  char *up = NULL, *back = NULL, *tokens = NULL, *rotated = NULL;
  RC(fastmcp_auth_proxy_handle_consent(p, (const uint8_t *)form, (size_t)form_len, jar, &up), OK, "cimd consent");
  const char *ul = up ? strstr(up, "[\"Location\",\"") : NULL;
  char *upstream_url = ul ? strndup(ul + 13, strcspn(ul + 13, "\"")) : NULL;
  char *callback = upstream_url ? http_get_location(upstream_url) : NULL;
  const char *cq = callback ? strchr(callback, '?') : NULL;
  RC(fastmcp_auth_proxy_handle_callback(p, cq ? cq + 1 : "", jar, &back), OK, "cimd callback");
  const char *bl = back ? strstr(back, "[\"Location\",\"") : NULL;
  char *to_client = bl ? strndup(bl + 13, strcspn(bl + 13, "\"")) : NULL;
  char *code = to_client ? query_param(to_client, "code") : NULL;
  CHECK(code != NULL, "cimd code for the client");
  int body_len = snprintf(body, sizeof body,
                          "grant_type=authorization_code&code=%s&code_verifier=%s&client_id=%s%%2Fgood.json&"
                          "redirect_uri=http%%3A%%2F%%2F127.0.0.1%%3A41234%%2Fcallback",
                          code ? code : "", verifier, doc_base);
  RC(fastmcp_auth_proxy_token(p, (const uint8_t *)body, (size_t)body_len, NULL, &tokens), OK, "cimd code exchange");
  char *refresh = json_str(tokens, "refresh_token");
  body_len = snprintf(body, sizeof body, "grant_type=refresh_token&refresh_token=%s&client_id=%s%%2Fgood.json",
                      refresh ? refresh : "", doc_base);
  RC(fastmcp_auth_proxy_token(p, (const uint8_t *)body, (size_t)body_len, NULL, &rotated), OK, "cimd refresh");
  char *new_refresh = json_str(rotated, "refresh_token"), client_id[512];
  snprintf(client_id, sizeof client_id, "%s/good.json", doc_base);
  RC(fastmcp_auth_proxy_revoke(p, new_refresh, client_id, NULL), OK, "cimd revoke");
  free(ca), free(config), free(upstream_url), free(callback), free(to_client), free(code), free(refresh), free(new_refresh);
  fastmcp_auth_string_free(verifier), fastmcp_auth_string_free(challenge), fastmcp_auth_string_free(page);
  fastmcp_auth_string_free(up), fastmcp_auth_string_free(back), fastmcp_auth_string_free(tokens);
  fastmcp_auth_string_free(rotated);
  fastmcp_auth_proxy_free(p);
}

/* ---- logging: the library's records reach a C callback --------------------------------------------------------- */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[65536];
static size_t log_len = 0;
static int log_warnings = 0;

static void on_log(void *userdata, uint32_t level, const char *target, const char *message) {
  int *calls = userdata;
  pthread_mutex_lock(&log_lock);
  (*calls)++;
  if (level == FASTMCP_AUTH_LOG_LEVEL_WARN) log_warnings++;
  int n = snprintf(log_text + log_len, sizeof log_text - log_len, "%u %s %s\n", level, target, message);
  if (n > 0 && log_len + (size_t)n < sizeof log_text) log_len += (size_t)n;
  pthread_mutex_unlock(&log_lock);
}

static int log_calls = 0;

static void test_logging_start(void) {
  RC(fastmcp_auth_set_log_callback(on_log, &log_calls, 9), FASTMCP_AUTH_RESULT_INVALID_ARGUMENT, "log level out of range");
  RC(fastmcp_auth_set_log_callback(on_log, &log_calls, FASTMCP_AUTH_LOG_LEVEL_WARN), OK, "log callback set");
  CHECK(FASTMCP_AUTH_VERSION_MAJOR == 0 && strncmp(fastmcp_auth_version(), "0.", 2) == 0, "version macros match the library");
}

/* After every other test: warnings arrived (the keyless proxy of test_rate_limits logs two findings), and no record
 * holds a secret or a token of the flows. */
static void test_logging_end(void) {
  pthread_mutex_lock(&log_lock);
  CHECK(log_warnings >= 2 && contains(log_text, "jwt_signing_key is not set"), "warnings reach the callback");
  CHECK(contains(log_text, "fastmcp_auth::"), "records name their module");
  CHECK(!contains(log_text, "upstream secret") && !contains(log_text, "eyJ") && !contains(log_text, "c-enc-key") &&
            !contains(log_text, "c-jwt-key"),
        "no secret or token in any record");
  pthread_mutex_unlock(&log_lock);
  RC(fastmcp_auth_set_log_callback(NULL, NULL, FASTMCP_AUTH_LOG_LEVEL_WARN), OK, "log callback removed");
  int before = log_calls;
  fastmcp_auth_proxy *p = NULL;
  fastmcp_auth_proxy_new("{\"base_url\":\"http://127.0.0.1:8000\",\"upstream_authorization_endpoint\":\"http://127.0.0.1:9/a\","
                         "\"upstream_token_endpoint\":\"http://127.0.0.1:9/t\",\"upstream_client_id\":\"c\"}",
                         NULL, &p);
  fastmcp_auth_proxy_free(p);
  CHECK(log_calls == before, "no callback after removal");
}

int main(void) {
  test_logging_start();
  test_basics();
  test_keys_and_pkce();
  test_jwt();
  test_stores(getenv("REDIS_URL"));
  test_threads();
  test_rate_limits();
  const char *idp = getenv("IDP_URL");
  if (idp) test_proxy(idp);
  else CHECK(0, "IDP_URL not set: the proxy flow needs the mock identity provider");
  const char *doc_base = getenv("DOC_HOST_URL"), *ca = getenv("DOC_HOST_CA"), *hostile = getenv("DOC_HOST_HOSTILE");
  if (idp && doc_base && ca) test_cimd(idp, doc_base, ca, hostile);
  else CHECK(0, "DOC_HOST_URL / DOC_HOST_CA not set: the CIMD flow needs the HTTPS document host");
  test_logging_end();
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
