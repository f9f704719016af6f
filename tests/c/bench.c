/* Per-call cost of JWT verify and DiskStore get through the C ABI (scripts/bench-c.sh). Prints JSON. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fastmcp_auth.h"

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  const char *key = "bench-signing-key";
  fastmcp_auth_jwt_issuer *iss = NULL;
  fastmcp_auth_jwt_issuer_new("https://mcp.example.com", "https://mcp.example.com", (const uint8_t *)key, strlen(key), NULL, &iss);
  char *token = NULL, *claims = NULL;
  fastmcp_auth_jwt_issuer_issue_access_token(iss, "client-123", "[\"read\",\"write\"]", NULL, &token);
  const int n = 200000;
  for (int i = 0; i < n / 10; i++) {
    fastmcp_auth_jwt_issuer_verify(iss, token, FASTMCP_AUTH_TOKEN_ACCESS, &claims);
    fastmcp_auth_string_free(claims);
  }
  double t = now_us();
  for (int i = 0; i < n; i++) {
    fastmcp_auth_jwt_issuer_verify(iss, token, FASTMCP_AUTH_TOKEN_ACCESS, &claims);
    fastmcp_auth_string_free(claims);
  }
  double verify = (now_us() - t) / n;
  fastmcp_auth_store *s = NULL;
  fastmcp_auth_store_new_disk(argv[1], 0, NULL, false, &s);
  const char *value = "{\"accessToken\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"expiresIn\":3600}";
  fastmcp_auth_store_save(s, "mapping:bench", value, 0);
  const int m = 50000;
  char *v = NULL;
  for (int i = 0; i < m / 10; i++) {
    fastmcp_auth_store_get(s, "mapping:bench", &v);
    fastmcp_auth_string_free(v);
  }
  t = now_us();
  for (int i = 0; i < m; i++) {
    fastmcp_auth_store_get(s, "mapping:bench", &v);
    fastmcp_auth_string_free(v);
  }
  double get = (now_us() - t) / m;
  printf("{\"verify_us\": %.4f, \"get_us\": %.4f}\n", verify, get);
  fastmcp_auth_string_free(token);
  fastmcp_auth_jwt_issuer_free(iss);
  fastmcp_auth_store_free(s);
  return 0;
}
