/* The C face (libfastmcp_auth, include/fastmcp_auth.h) in the conformance suite: one operation per run, given as
 * arguments; prints the result as JSON on stdout (protocol: tests/conformance/README.md). A failed call prints
 * {"error": "<result name>"}. Built by tests/conformance/run.py with gcc -Wall -Wextra -Werror. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastmcp_auth.h"

static int fail(fastmcp_auth_result r) {
  printf("{\"error\": \"%s\"}\n", fastmcp_auth_result_name(r));
  return 0;
}

/* A JSON string literal of s. */
static void print_json_string(const char *s) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') printf("\\%c", *p);
    else if (*p < 0x20) printf("\\u%04x", *p);
    else putchar(*p);
  }
  printf("\"\n");
}

static int print_owned(char *s, bool as_string) {
  if (!s) {
    printf("null\n");
    return 0;
  }
  if (as_string) print_json_string(s);
  else printf("%s\n", s);
  fastmcp_auth_string_free(s);
  return 0;
}

static fastmcp_auth_result issuer(const char *layout, const char *iss, const char *aud, const char *key,
                                  const char *now, fastmcp_auth_jwt_issuer **out) {
  char opts[128];
  if (strcmp(now, "-") == 0) snprintf(opts, sizeof opts, "{\"layout\": \"%s\"}", layout);
  else snprintf(opts, sizeof opts, "{\"layout\": \"%s\", \"fixed_time\": %s}", layout, now);
  return fastmcp_auth_jwt_issuer_new(iss, aud, (const uint8_t *)key, strlen(key), opts, out);
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  const char *op = argv[1];
  fastmcp_auth_result r;
  char *out = NULL;
  if (strcmp(op, "issue") == 0 && argc == 11) {
    /* issue <layout> <iss> <aud> <key> <client_id> <scopes_json> <options_json|-> <refresh 0|1> <now|-> */
    fastmcp_auth_jwt_issuer *i = NULL;
    if ((r = issuer(argv[2], argv[3], argv[4], argv[5], argv[10], &i)) != FASTMCP_AUTH_RESULT_OK) return fail(r);
    const char *opts = strcmp(argv[8], "-") == 0 ? NULL : argv[8];
    r = strcmp(argv[9], "1") == 0 ? fastmcp_auth_jwt_issuer_issue_refresh_token(i, argv[6], argv[7], opts, &out)
                                  : fastmcp_auth_jwt_issuer_issue_access_token(i, argv[6], argv[7], opts, &out);
    fastmcp_auth_jwt_issuer_free(i);
    return r == FASTMCP_AUTH_RESULT_OK ? print_owned(out, true) : fail(r);
  }
  if (strcmp(op, "verify") == 0 && argc == 9) {
    /* verify <layout> <iss> <aud> <key> <token> <access|refresh> <now|-> */
    fastmcp_auth_jwt_issuer *i = NULL;
    if ((r = issuer(argv[2], argv[3], argv[4], argv[5], argv[8], &i)) != FASTMCP_AUTH_RESULT_OK) return fail(r);
    uint32_t use = strcmp(argv[7], "refresh") == 0 ? FASTMCP_AUTH_TOKEN_REFRESH : FASTMCP_AUTH_TOKEN_ACCESS;
    r = fastmcp_auth_jwt_issuer_verify_detailed(i, argv[6], use, &out);
    fastmcp_auth_jwt_issuer_free(i);
    return r == FASTMCP_AUTH_RESULT_OK ? print_owned(out, false) : fail(r);
  }
  if (strcmp(op, "derive-key") == 0 && argc == 4) {
    r = fastmcp_auth_derive_key((const uint8_t *)argv[2], strlen(argv[2]), (uint32_t)strtoul(argv[3], NULL, 10), &out);
    return r == FASTMCP_AUTH_RESULT_OK ? print_owned(out, true) : fail(r);
  }
  if (strcmp(op, "derive-jwt-key") == 0 && argc == 5) {
    bool high = strcmp(argv[2], "high_entropy_material") == 0;
    r = fastmcp_auth_derive_jwt_key(high ? argv[3] : NULL, high ? NULL : argv[3], argv[4], 0, &out);
    return r == FASTMCP_AUTH_RESULT_OK ? print_owned(out, true) : fail(r);
  }
  if (strcmp(op, "challenge") == 0 && argc == 4) {
    r = fastmcp_auth_pkce_challenge(argv[2], argv[3], &out);
    return r == FASTMCP_AUTH_RESULT_OK ? print_owned(out, true) : fail(r);
  }
  if ((strcmp(op, "encrypt") == 0 || strcmp(op, "decrypt") == 0) && argc == 4) {
    /* encrypt <key> <value_json> | decrypt <key> <stored_json_string> */
    fastmcp_auth_store *mem = NULL, *enc = NULL;
    if ((r = fastmcp_auth_store_new_memory(0, &mem)) != FASTMCP_AUTH_RESULT_OK) return fail(r);
    if ((r = fastmcp_auth_store_new_encrypted(mem, argv[2], NULL, &enc)) != FASTMCP_AUTH_RESULT_OK) {
      fastmcp_auth_store_free(mem);
      return fail(r);
    }
    bool encrypt = strcmp(op, "encrypt") == 0;
    r = fastmcp_auth_store_save(encrypt ? enc : mem, "k", argv[3], 0);
    if (r == FASTMCP_AUTH_RESULT_OK) r = fastmcp_auth_store_get(encrypt ? mem : enc, "k", &out);
    fastmcp_auth_store_free(enc);
    fastmcp_auth_store_free(mem);
    if (r != FASTMCP_AUTH_RESULT_OK) return fail(r);
    if (!out && !encrypt) {
      printf("{\"error\": \"decrypt_failed\"}\n");
      return 0;
    }
    return print_owned(out, false);
  }
  if ((strcmp(op, "disk-write") == 0 && argc == 6) || (strcmp(op, "disk-read") == 0 && argc == 4)) {
    /* disk-write <dir> <key> <value_json> <ttl_ms> | disk-read <dir> <key> */
    fastmcp_auth_store *d = NULL;
    if ((r = fastmcp_auth_store_new_disk(argv[2], 0, NULL, false, &d)) != FASTMCP_AUTH_RESULT_OK) return fail(r);
    if (strcmp(op, "disk-write") == 0) {
      r = fastmcp_auth_store_save(d, argv[3], argv[4], strtoull(argv[5], NULL, 10));
      fastmcp_auth_store_free(d);
      if (r != FASTMCP_AUTH_RESULT_OK) return fail(r);
      printf("true\n");
      return 0;
    }
    r = fastmcp_auth_store_get(d, argv[3], &out);
    fastmcp_auth_store_free(d);
    return r == FASTMCP_AUTH_RESULT_OK ? print_owned(out, false) : fail(r);
  }
  if (strcmp(op, "proxy-authorize") == 0 && argc == 4) {
    /* proxy-authorize <config_json> <query>: {"status": N} or the OAuth error's JSON. */
    fastmcp_auth_proxy *p = NULL;
    if ((r = fastmcp_auth_proxy_new(argv[2], NULL, &p)) != FASTMCP_AUTH_RESULT_OK) return fail(r);
    r = fastmcp_auth_proxy_authorize(p, argv[3], NULL, &out);
    fastmcp_auth_proxy_free(p);
    if (r == FASTMCP_AUTH_RESULT_OAUTH_ERROR) {
      printf("%s\n", fastmcp_auth_last_error());
      return 0;
    }
    if (r != FASTMCP_AUTH_RESULT_OK) return fail(r);
    const char *st = strstr(out, "\"status\":");
    printf("{\"status\": %d}\n", st ? atoi(st + 9) : 0);
    fastmcp_auth_string_free(out);
    return 0;
  }
  fprintf(stderr, "usage: agent <op> ... (see tests/conformance/run.py)\n");
  return 2;
}
