// Package jwt verifies bearer JWTs (RFC 7519) in JWS compact serialization (RFC 7515)
// for the edge's JWT gateway. It works on []byte, knows nothing of HTTP servers, and
// verifies HMAC and EdDSA tokens, and any token found in its verified-token cache,
// without allocating.
//
// # Use
//
//	p, err := jwt.NewPolicy("users", jwt.Config{...}) // loads key files; errors name them
//	p.Start(ctx)                                      // JWKS URLs: fetch now, then refresh
//	defer p.Close()
//
//	// per request, for a route with this policy:
//	tok, ok := jwt.ExtractBearer(authorizationHeaderValue)
//	if !ok { err = jwt.ErrMissingToken } else {
//		c := jwt.AcquireClaims(); defer jwt.ReleaseClaims(c)
//		err = p.Verify(tok, now, c)
//		if err == nil && !c.HasScopes(route.Scopes) { err = jwt.ErrInsufficientScope }
//	}
//	// err != nil: status jwt.HTTPStatus(err) (401/403/503), body code jwt.Code(err),
//	// metric/log label jwt.Reason(err), header WWW-Authenticate from
//	// jwt.AppendWWWAuthenticate(dst, err, route.Scopes) when it is not empty.
//	// Always delete every p.ForwardClaims()[i].Header from the request, then on success
//	// set it to c.Value(Claim) when ok.
//
// On SIGHUP with an unchanged configuration, Policy.Reload re-reads the key files. When
// the configuration changed, build new policies with Config.Previous set to the old
// policy of the same name (so fetched JWKS carry over), Start them, swap them in, and
// Close the old ones.
//
// # Algorithms and keys
//
// HS256/384/512 (RFC 7518 §3.2), RS256/384/512 (§3.3), PS256/384/512 (§3.5), ES256/384/512
// (§3.4, raw R||S), EdDSA with an Ed25519 or Ed448 key (RFC 8037), the fully-specified
// Ed25519 and Ed448 (RFC 9864), and ML-DSA-44/65/87 (RFC 9964, JWK kty "AKP", empty
// context; verified with cloudflare/circl, as Ed448 is). "none" can never be configured.
//
// Every key is bound to one algorithm: by KeyConfig.Alg, by its JWK "alg", or where the
// key admits only one, by the key itself (an EC key's curve, an ML-DSA key's parameter
// set). An Ed25519 key with no configured alg accepts "EdDSA" and "Ed25519", an Ed448 key
// "EdDSA" and "Ed448": both names denote the same algorithm on that key. RSA keys and
// HMAC secrets must be bound explicitly, since RS* and PS* share RSA keys. The token's
// "alg" and "kid" only select among the policy's keys: a token with a kid is checked
// with the keys of that kid, which must be bound to its alg; a token without one tries
// every key bound to its alg. Header members jwk, jku, x5u and x5c are ignored: keys come
// only from configuration.
//
// # Stricter than golang-jwt
//
// A differential fuzz target (fuzz_test.go) holds this package to never accepting a token
// golang-jwt/jwt/v5 rejects under the same keys and rules. Where golang-jwt accepts and
// this package rejects, the token breaks one of these rules:
//
//   - Base64url is strict (RFC 7515 §2): no padding, no '+' or '/', no line breaks
//     (encoding/base64 skips CR and LF), zero trailing bits.
//   - Duplicate member names in the header or claims are rejected (RFC 7515 §4, RFC 7519
//     §4), after unescaping, instead of the last one winning.
//   - JSON strings must be valid UTF-8 with paired surrogate escapes (RFC 8259 §8.1-8.2);
//     encoding/json substitutes U+FFFD instead.
//   - JSON nests at most 32 levels, counting the top-level object; the header has at most
//     16 members and the claims at most 64.
//   - The header may not carry "crit" (RFC 7515 §4.1.11: this verifier understands no
//     extension), nor "b64" other than true (RFC 7797 unencoded payloads).
//   - exp, nbf and iat must be numbers in [0, 253402300799] (up to 9999-12-31).
//   - Fractional NumericDates round toward invalidity from their exact decimal value: exp
//     down, nbf and iat up (golang-jwt truncates a float64).
//   - PS256/384/512 signatures must use a salt as long as the hash (RFC 7518 §3.5);
//     golang-jwt accepts any salt length.
//   - Tokens longer than Config.MaxTokenBytes (16 KiB by default) are rejected unread.
//
// exp equal to 0 is an expired token here and an absent exp in golang-jwt; with exp
// required both reject it.
//
// # Caching
//
// Signatures other than HMAC are remembered in a per-policy verified-token cache (see
// tokenCache): a repeated token is matched byte for byte, skips decoding and the
// signature math, and is still checked against exp, nbf, iat, iss and aud at the given
// time. Entries die at the token's exp, when their key leaves the key set, or under the
// memory cap (Config.CacheBytes) by CLOCK eviction.
//
// # JWKS
//
// A jwks_url is fetched by Start's goroutine at once and then every Refresh (default 5m),
// sooner when a Cache-Control max-age says so, though a max-age never brings fetches
// closer than Config.MinRefresh (default 10s). A token whose kid is unknown asks for an early refetch (rate-limited by
// MinRefresh) and is rejected meanwhile. A failed fetch keeps the keys fetched before and
// retries with backoff (1s doubling, up to Refresh). While some jwks_url has never been
// fetched, a token no configured key matches gets ErrJWKSUnavailable (503), not 401.
package jwt
