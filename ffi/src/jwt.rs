//! JwtIssuer, key derivation and PKCE.

use std::ffi::c_char;

use fastmcp_auth_core::keys::{derive_jwt_key_with_iterations, key_material, JWT_KEY_PBKDF2_ITERATIONS};
use fastmcp_auth_core::pkce::{self, ChallengeMethod, CodeVerifier};
use fastmcp_auth_core::{derive_key, IssueOptions, JwtIssuer, TokenUse};

use crate::result::*;

/// An HS256 JWT issuer. Immutable once built: share it between threads freely. It keeps no copy of the raw key,
/// only the HMAC state derived from it.
pub struct fastmcp_auth_jwt_issuer {
    _private: [u8; 0],
}

/// Token use: access.
pub const FASTMCP_AUTH_TOKEN_ACCESS: u32 = 0;
/// Token use: refresh.
pub const FASTMCP_AUTH_TOKEN_REFRESH: u32 = 1;

fn token_use(v: u32) -> FfiResult<TokenUse> {
    match v {
        FASTMCP_AUTH_TOKEN_ACCESS => Ok(TokenUse::Access),
        FASTMCP_AUTH_TOKEN_REFRESH => Ok(TokenUse::Refresh),
        _ => Err(fail(
            fastmcp_auth_result::InvalidArgument,
            "token_use must be FASTMCP_AUTH_TOKEN_ACCESS or _REFRESH",
        )),
    }
}

/// A new issuer. `key`/`key_len`: the HMAC key bytes (both fastmcp peers use the UTF-8 bytes of their key text).
/// `options_json` (may be NULL): `{"layout": "ts"|"py", "access_token_ttl", "refresh_token_ttl", "kid", "leeway",
/// "fixed_time", "previous_keys": [{"key": "...", "kid": "..."}]}`. Free with `fastmcp_auth_jwt_issuer_free`.
#[no_mangle]
pub extern "C" fn fastmcp_auth_jwt_issuer_new(
    issuer: *const c_char,
    audience: *const c_char,
    key: *const u8,
    key_len: usize,
    options_json: *const c_char,
    issuer_out: *mut *mut fastmcp_auth_jwt_issuer,
) -> fastmcp_auth_result {
    boundary(|| {
        let mut i = JwtIssuer::new(
            text(issuer, "issuer")?,
            text(audience, "audience")?,
            bytes(key, key_len, "key")?,
        )
        .map_err(from_core)?;
        let opts = json(options_json, "options_json", true)?;
        if !opts.is_null() {
            i = i.configure_from_json(&opts).map_err(from_core)?;
        }
        put_handle(issuer_out, i)
    })
}

/// Frees an issuer (NULL is a no-op).
#[no_mangle]
pub extern "C" fn fastmcp_auth_jwt_issuer_free(issuer: *mut fastmcp_auth_jwt_issuer) {
    free_handle::<JwtIssuer, _>(issuer)
}

fn issue(
    issuer: *const fastmcp_auth_jwt_issuer,
    kind: TokenUse,
    client_id: *const c_char,
    scopes_json: *const c_char,
    options_json: *const c_char,
    token_out: *mut *mut c_char,
) -> fastmcp_auth_result {
    boundary(|| {
        out_ptr(token_out, "token_out")?;
        let i = handle::<JwtIssuer, _>(issuer, "issuer")?;
        let scopes = json(scopes_json, "scopes_json", true)?;
        let scopes = string_array(&scopes, "scopes_json")?;
        let opts = IssueOptions::from_json(&json(options_json, "options_json", true)?).map_err(from_core)?;
        let client = text(client_id, "client_id")?;
        let t = match kind {
            TokenUse::Access => i.issue_access_token(client, &scopes, opts),
            TokenUse::Refresh => i.issue_refresh_token(client, &scopes, opts),
        }
        .map_err(from_core)?;
        put_string(token_out, Some(t))
    })
}

/// Issues an access token. `scopes_json`: JSON array of strings (NULL = none). `options_json` (may be NULL):
/// `{"jti", "expires_in", "subject", "upstream_claims", "extra_claims"}`. Free the token with `fastmcp_auth_string_free`.
#[no_mangle]
pub extern "C" fn fastmcp_auth_jwt_issuer_issue_access_token(
    issuer: *const fastmcp_auth_jwt_issuer,
    client_id: *const c_char,
    scopes_json: *const c_char,
    options_json: *const c_char,
    token_out: *mut *mut c_char,
) -> fastmcp_auth_result {
    issue(
        issuer,
        TokenUse::Access,
        client_id,
        scopes_json,
        options_json,
        token_out,
    )
}

/// Issues a refresh token (arguments as for the access token).
#[no_mangle]
pub extern "C" fn fastmcp_auth_jwt_issuer_issue_refresh_token(
    issuer: *const fastmcp_auth_jwt_issuer,
    client_id: *const c_char,
    scopes_json: *const c_char,
    options_json: *const c_char,
    token_out: *mut *mut c_char,
) -> fastmcp_auth_result {
    issue(
        issuer,
        TokenUse::Refresh,
        client_id,
        scopes_json,
        options_json,
        token_out,
    )
}

/// Verifies `token` as `token_use` (FASTMCP_AUTH_TOKEN_ACCESS / _REFRESH). On success `*claims_json_out` is the
/// claims object; otherwise `INVALID_TOKEN` or `TOKEN_EXPIRED`, with the reason in `fastmcp_auth_last_error()`.
#[no_mangle]
pub extern "C" fn fastmcp_auth_jwt_issuer_verify(
    issuer: *const fastmcp_auth_jwt_issuer,
    token: *const c_char,
    token_use: u32,
    claims_json_out: *mut *mut c_char,
) -> fastmcp_auth_result {
    boundary(|| {
        out_ptr(claims_json_out, "claims_json_out")?;
        let i = handle::<JwtIssuer, _>(issuer, "issuer")?;
        let c = i
            .verify_json(text(token, "token")?, token_use_arg(token_use)?)
            .map_err(from_core)?;
        put_string(claims_json_out, Some(c))
    })
}

fn token_use_arg(v: u32) -> FfiResult<TokenUse> {
    token_use(v)
}

/// Verifies like fastmcp TS's `verify()`: always `OK` for a readable token argument, with
/// `{"valid": bool, "claims": {...}?, "error": "<code>"?, "message": "<text>"?}` in `*verification_json_out`.
#[no_mangle]
pub extern "C" fn fastmcp_auth_jwt_issuer_verify_detailed(
    issuer: *const fastmcp_auth_jwt_issuer,
    token: *const c_char,
    token_use: u32,
    verification_json_out: *mut *mut c_char,
) -> fastmcp_auth_result {
    boundary(|| {
        out_ptr(verification_json_out, "verification_json_out")?;
        let i = handle::<JwtIssuer, _>(issuer, "issuer")?;
        let v = i.verify_detailed(text(token, "token")?, token_use_arg(token_use)?);
        put_string(verification_json_out, Some(v.to_json().to_string()))
    })
}

/// fastmcp TS `JWTIssuer.deriveKey(secret, iterations)`: PBKDF2-HMAC-SHA256, standard base64 (free the result).
#[no_mangle]
pub extern "C" fn fastmcp_auth_derive_key(
    secret: *const u8,
    secret_len: usize,
    iterations: u32,
    key_out: *mut *mut c_char,
) -> fastmcp_auth_result {
    boundary(|| {
        out_ptr(key_out, "key_out")?;
        let s = std::str::from_utf8(bytes(secret, secret_len, "secret")?)
            .map_err(|_| fail(fastmcp_auth_result::InvalidUtf8, "secret is not valid UTF-8"))?;
        put_string(key_out, Some(derive_key(s, iterations).map_err(from_core)?))
    })
}

/// fastmcp Python `derive_jwt_key`: exactly one of `high_entropy_material` / `low_entropy_material` (the other
/// NULL); `iterations` 0 means fastmcp's 1,000,000 (low-entropy only). Urlsafe base64 text (free the result).
#[no_mangle]
pub extern "C" fn fastmcp_auth_derive_jwt_key(
    high_entropy_material: *const c_char,
    low_entropy_material: *const c_char,
    salt: *const c_char,
    iterations: u32,
    key_out: *mut *mut c_char,
) -> fastmcp_auth_result {
    boundary(|| {
        out_ptr(key_out, "key_out")?;
        let m = key_material(
            opt_text(high_entropy_material, "high_entropy_material")?,
            opt_text(low_entropy_material, "low_entropy_material")?,
        )
        .map_err(from_core)?;
        let it = if iterations == 0 {
            JWT_KEY_PBKDF2_ITERATIONS
        } else {
            iterations
        };
        put_string(
            key_out,
            Some(derive_jwt_key_with_iterations(m, text(salt, "salt")?, it).map_err(from_core)?),
        )
    })
}

/// A random PKCE verifier of `length` (43-128) characters (free the result).
#[no_mangle]
pub extern "C" fn fastmcp_auth_pkce_generate_verifier(
    length: usize,
    verifier_out: *mut *mut c_char,
) -> fastmcp_auth_result {
    boundary(|| {
        out_ptr(verifier_out, "verifier_out")?;
        put_string(
            verifier_out,
            Some(
                CodeVerifier::generate(length)
                    .map_err(from_core)?
                    .as_str()
                    .to_owned(),
            ),
        )
    })
}

/// The challenge of `verifier` under `method` ("S256" or "plain") (free the result).
#[no_mangle]
pub extern "C" fn fastmcp_auth_pkce_challenge(
    verifier: *const c_char,
    method: *const c_char,
    challenge_out: *mut *mut c_char,
) -> fastmcp_auth_result {
    boundary(|| {
        out_ptr(challenge_out, "challenge_out")?;
        let m = ChallengeMethod::parse(text(method, "method")?).map_err(from_core)?;
        put_string(
            challenge_out,
            Some(pkce::generate_challenge(text(verifier, "verifier")?, m)),
        )
    })
}

/// Whether `verifier` matches `challenge` under `method` (constant time).
#[no_mangle]
pub extern "C" fn fastmcp_auth_pkce_validate(
    verifier: *const c_char,
    challenge: *const c_char,
    method: *const c_char,
    valid_out: *mut bool,
) -> fastmcp_auth_result {
    boundary(|| {
        out_ptr(valid_out, "valid_out")?;
        let m = ChallengeMethod::parse(text(method, "method")?).map_err(from_core)?;
        put(
            valid_out,
            pkce::validate_challenge(text(verifier, "verifier")?, text(challenge, "challenge")?, m),
        )
    })
}
