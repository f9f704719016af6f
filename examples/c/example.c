/* A C program using libfastmcp_auth: an encrypted DiskStore, a single-use code, and a JWT round trip.
 * Build (after scripts/install-c.sh PREFIX=$HOME/.local):
 *   cc examples/c/example.c $(pkg-config --cflags --libs fastmcp_auth) -o example && ./example */
#include <stdio.h>
#include <string.h>

#include "fastmcp_auth.h"

static int die(const char *what, fastmcp_auth_result rc) {
  fprintf(stderr, "%s failed: %s (%s)\n", what, fastmcp_auth_result_name(rc), fastmcp_auth_last_error());
  return 1;
}

int main(void) {
  fastmcp_auth_store *disk = NULL, *store = NULL;
  fastmcp_auth_result rc;
  if ((rc = fastmcp_auth_store_new_disk("example-data", 60000, NULL, false, &disk))) return die("disk store", rc);
  if ((rc = fastmcp_auth_store_new_encrypted(disk, "example-encryption-key", NULL, &store))) return die("encrypted store", rc);
  if ((rc = fastmcp_auth_store_save(store, "code:abc", "{\"client_id\":\"c1\"}", 300000))) return die("save", rc);
  char *value = NULL;
  if ((rc = fastmcp_auth_store_take(store, "code:abc", &value))) return die("take", rc);
  printf("took %s\n", value ? value : "(nothing)");
  fastmcp_auth_string_free(value);
  if ((rc = fastmcp_auth_store_take(store, "code:abc", &value))) return die("take", rc);
  printf("second take: %s\n", value ? value : "(nothing: single use)");

  fastmcp_auth_jwt_issuer *issuer = NULL;
  const char *key = "example-signing-key";
  if ((rc = fastmcp_auth_jwt_issuer_new("https://mcp.example.com", "https://mcp.example.com", (const uint8_t *)key,
                                        strlen(key), NULL, &issuer)))
    return die("issuer", rc);
  char *token = NULL, *claims = NULL;
  if ((rc = fastmcp_auth_jwt_issuer_issue_access_token(issuer, "client-1", "[\"read\"]", NULL, &token))) return die("issue", rc);
  if ((rc = fastmcp_auth_jwt_issuer_verify(issuer, token, FASTMCP_AUTH_TOKEN_ACCESS, &claims))) return die("verify", rc);
  printf("claims: %s\n", claims);
  fastmcp_auth_string_free(token);
  fastmcp_auth_string_free(claims);
  fastmcp_auth_jwt_issuer_free(issuer);
  fastmcp_auth_store_free(store);
  fastmcp_auth_store_free(disk);
  printf("libfastmcp_auth %s: ok\n", fastmcp_auth_version());
  return 0;
}
