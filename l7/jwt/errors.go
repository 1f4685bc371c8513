package jwt

import "errors"

// Error is a rejection of a request's token. Every error Verify returns is one of the
// sentinel *Error values below (compare with errors.Is or ==), so a rejection never
// allocates and never carries token bytes: the token is a credential and must not reach
// logs. Configuration and key-loading errors are ordinary wrapped errors instead, and
// carry the offending file or value.
type Error struct {
	reason  string // metric label and access-log value, e.g. "expired"
	code    string // contract error code: missing_token, invalid_token, insufficient_scope, jwks_unavailable
	message string // RFC 6750 error_description: %x20-21 / %x23-5B / %x5D-7E only
	status  int    // HTTP status the edge answers with
}

// Error returns "jwt: " followed by the description.
func (e *Error) Error() string { return "jwt: " + e.message }

// Is reports whether target is ErrInvalidToken and e belongs to that family, so callers
// can branch on the family without listing every reason.
func (e *Error) Is(target error) bool {
	return target == ErrInvalidToken && e.code == "invalid_token"
}

func tokenError(reason, message string) *Error {
	return &Error{reason: reason, code: "invalid_token", message: message, status: 401}
}

// Sentinel errors. Every invalid-token error matches errors.Is(err, ErrInvalidToken).
var (
	// ErrInvalidToken is the family of every 401 invalid_token rejection; Verify never
	// returns it directly but errors.Is(err, ErrInvalidToken) holds for each member.
	ErrInvalidToken = &Error{reason: "invalid_token", code: "invalid_token", message: "invalid token", status: 401}

	// ErrMissingToken means the request carried no bearer token (no Authorization header,
	// another scheme, or an empty credential). RFC 6750 §3.1 asks for no error code then.
	ErrMissingToken = &Error{reason: "missing_token", code: "missing_token", message: "bearer token required", status: 401}

	// ErrInsufficientScope means the token is valid but lacks a scope the route requires
	// (RFC 6750 §3.1, 403).
	ErrInsufficientScope = &Error{reason: "insufficient_scope", code: "insufficient_scope", message: "token lacks a required scope", status: 403}

	// ErrJWKSUnavailable means no configured key matched the token while at least one of the
	// policy's JWKS URLs has never been fetched, so the edge cannot tell a bad token from one
	// signed by a key it has not seen yet (contract: 503 jwks_unavailable).
	ErrJWKSUnavailable = &Error{reason: "jwks_unavailable", code: "jwks_unavailable", message: "signing keys not yet available", status: 503}

	ErrMalformed       = tokenError("malformed", "malformed token")
	ErrOversized       = tokenError("oversized", "token too large")
	ErrDuplicateMember = tokenError("duplicate_member", "duplicate JSON member")
	ErrInvalidUTF8     = tokenError("invalid_utf8", "invalid UTF-8 in token JSON")
	ErrTooDeep         = tokenError("too_deep", "token JSON nested too deeply")
	ErrTooManyMembers  = tokenError("too_many_members", "too many JSON members")
	ErrNotObject       = tokenError("not_object", "token header or claims not a JSON object")
	ErrCrit            = tokenError("crit", "unsupported critical header")
	ErrB64             = tokenError("b64", "unencoded payload not supported")
	ErrAlgNotAllowed   = tokenError("alg_not_allowed", "algorithm not allowed")
	ErrUnknownKid      = tokenError("unknown_kid", "unknown key id")
	ErrKeyAlgMismatch  = tokenError("alg_mismatch", "key not bound to token algorithm")
	ErrNoKey           = tokenError("no_key", "no key for token algorithm")
	ErrBadSignature    = tokenError("bad_signature", "signature verification failed")
	ErrBadDate         = tokenError("bad_date", "invalid NumericDate claim")
	ErrMissingExp      = tokenError("missing_exp", "exp claim required")
	ErrExpired         = tokenError("expired", "token expired")
	ErrNotYetValid     = tokenError("not_yet_valid", "token not valid yet")
	ErrIssuedInFuture  = tokenError("issued_in_future", "token issued in the future")
	ErrBadIssuer       = tokenError("bad_issuer", "issuer not accepted")
	ErrBadAudience     = tokenError("bad_audience", "audience not accepted")
)

// asError finds the *Error in err's chain without allocating in the common case where
// err is one of the sentinels itself.
func asError(err error) *Error {
	if e, ok := err.(*Error); ok {
		return e
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// Reason returns a short, bounded label for err suitable for the access log and the
// edge_jwt_rejections_total{reason} metric ("expired", "bad_signature", ...). It returns
// "" for nil and "error" for errors this package did not produce.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	if e := asError(err); e != nil {
		return e.reason
	}
	return "error"
}

// Code returns the contract's error code for err: "missing_token", "invalid_token",
// "insufficient_scope" or "jwks_unavailable" ("invalid_token" for foreign errors).
func Code(err error) string {
	if e := asError(err); e != nil {
		return e.code
	}
	return "invalid_token"
}

// HTTPStatus returns the status the edge answers err with: 401, 403 or 503 (401 for
// foreign errors).
func HTTPStatus(err error) int {
	if e := asError(err); e != nil {
		return e.status
	}
	return 401
}

// Message returns the human text for the error body ("token expired").
func Message(err error) string {
	if e := asError(err); e != nil {
		return e.message
	}
	return "invalid token"
}

// AppendWWWAuthenticate appends the WWW-Authenticate field value for err (RFC 6750 §3)
// to dst: `Bearer error="invalid_token", error_description="..."` for invalid and
// missing tokens (the contract gives both 401s this challenge; RFC 6750 §3.1 says a
// server SHOULD NOT send an error code when there were no credentials, and the
// contract takes precedence), and `Bearer error="insufficient_scope", error_description="...", scope="a b"`
// for ErrInsufficientScope, listing requiredScopes (scope tokens outside RFC 6749 §3.3's
// character set are left out). It appends nothing for ErrJWKSUnavailable (a 503 is not
// an authentication challenge). It does not allocate when dst has room.
func AppendWWWAuthenticate(dst []byte, err error, requiredScopes []string) []byte {
	e := asError(err)
	if e == nil {
		e = ErrInvalidToken
	}
	switch e.code {
	case "jwks_unavailable":
		return dst
	}
	code := e.code
	if code == "missing_token" {
		code = "invalid_token" // RFC 6750 §3.1 has no missing_token error code
	}
	dst = append(dst, `Bearer error="`...)
	dst = append(dst, code...)
	dst = append(dst, `", error_description="`...)
	dst = append(dst, e.message...)
	dst = append(dst, '"')
	if e.code == "insufficient_scope" && len(requiredScopes) > 0 {
		dst = append(dst, `, scope="`...)
		first := true
		for _, s := range requiredScopes {
			if !validScopeToken(s) {
				continue
			}
			if !first {
				dst = append(dst, ' ')
			}
			first = false
			dst = append(dst, s...)
		}
		dst = append(dst, '"')
	}
	return dst
}

// validScopeToken reports whether s is an RFC 6749 §3.3 scope-token:
// 1*( %x21 / %x23-5B / %x5D-7E ), which is also safe inside a quoted-string.
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// ExtractBearer returns the credential of an Authorization field value that uses the
// Bearer scheme (RFC 6750 §2.1; the scheme name is case-insensitive per RFC 9110 §11.1).
// Surrounding spaces and tabs are ignored; ok is false when the scheme is another one or
// the credential is empty. The result aliases authorization.
func ExtractBearer(authorization []byte) (token []byte, ok bool) {
	b := trimOWS(authorization)
	const scheme = "bearer"
	if len(b) <= len(scheme) || b[len(scheme)] != ' ' {
		return nil, false
	}
	for i := 0; i < len(scheme); i++ {
		if b[i]|0x20 != scheme[i] {
			return nil, false
		}
	}
	b = trimOWS(b[len(scheme):])
	if len(b) == 0 {
		return nil, false
	}
	return b, true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
