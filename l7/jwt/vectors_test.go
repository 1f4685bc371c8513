package jwt

import (
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.com/edge/l7/jwt/mint"
)

// Test vectors from RFC 7515 appendix A (JWS examples) and RFC 8037 appendix A (Ed25519).
// The RFC 7515 examples share one payload, whose exp is 1300819380 (2011-03-22).

const rfc7515Payload = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"

var rfc7515Now = time.Unix(1300819380-60, 0)

const (
	// RFC 7515 A.1: HS256 with the JWK {"kty":"oct","k":...}; the header and payload
	// contain CRLF whitespace.
	rfc7515A1Key   = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"
	rfc7515A1Token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9." + rfc7515Payload + ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"

	// RFC 7515 A.2: RS256.
	rfc7515A2N = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMs" +
		"D1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdV" +
		"MTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"
	rfc7515A2D = "Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46sui395IW_GO-pWJ1O0" +
		"BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYT" +
		"CBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLhBOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ"
	rfc7515A2P = "4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdiYrqBdss1l58BQ3KhooKeQTa9AB0Hw_Py5PJdTJNPY8cQn7ouZ2KKDcmnPG" +
		"BY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC-KDV5z-y2XDwGUc"
	rfc7515A2Q = "uQPEfgmVtjL0Uyyx88GZFF1fOunH3-7cepKmtH4pxhtCoHqpWmT8YAmZxaewHgHAjLYsp1ZSe7zFYHj7C6ul7TjeLQeZD_YwD66t62wDmpe_HlB-TnBA" +
		"-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjcJIDEz9RWdc"
	rfc7515A2Token = "eyJhbGciOiJSUzI1NiJ9." + rfc7515Payload + "." +
		"cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4" +
		"BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqv" +
		"hJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw"

	// RFC 7515 A.3: ES256 (the public part of the example key).
	rfc7515A3JWK   = `{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`
	rfc7515A3Token = "eyJhbGciOiJFUzI1NiJ9." + rfc7515Payload + "." +
		"DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"

	// RFC 7515 A.4: ES512 over the non-JSON payload "Payload".
	rfc7515A4JWK = `{"kty":"EC","crv":"P-521",` +
		`"x":"AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk",` +
		`"y":"ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2"}`
	rfc7515A4Input = "eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA"
	rfc7515A4Sig   = "AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZq" +
		"wqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8Kp" +
		"EHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn"

	// RFC 7515 A.5: an Unsecured JWS ("alg":"none").
	rfc7515A5Token = "eyJhbGciOiJub25lIn0." + rfc7515Payload + "."

	// RFC 8037 A.1-A.4: the Ed25519 key and the signature of "Example of Ed25519 signing".
	rfc8037D     = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
	rfc8037X     = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
	rfc8037Input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
	rfc8037Sig   = "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)

func writeJWKS(t *testing.T, jwks string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, []byte(jwks), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRFC7515Vectors(t *testing.T) {
	tests := []struct {
		name, alg, jwks, token string
	}{
		{"A.1 HS256", "HS256", `{"keys":[{"kty":"oct","k":"` + rfc7515A1Key + `"}]}`, rfc7515A1Token},
		{"A.2 RS256", "RS256", `{"keys":[{"kty":"RSA","n":"` + rfc7515A2N + `","e":"AQAB"}]}`, rfc7515A2Token},
		{"A.3 ES256", "", `{"keys":[` + rfc7515A3JWK + `]}`, rfc7515A3Token},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestPolicy(t, Config{
				Keys:   []KeyConfig{{JWKSFile: writeJWKS(t, tt.jwks), Alg: tt.alg}},
				Issuer: "joe",
			})
			var c Claims
			if err := p.Verify([]byte(tt.token), rfc7515Now, &c); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if v, ok := c.Value("http://example.com/is_root"); !ok || string(v) != "true" {
				t.Fatalf("is_root = %q, %v", v, ok)
			}
			if err := p.Verify([]byte(tt.token), time.Unix(1300819380, 0), &c); err != ErrExpired {
				t.Fatalf("at exp: %v, want %v", err, ErrExpired)
			}
			// A flipped signature bit must fail.
			bad := []byte(tt.token)
			bad[len(bad)-3] ^= 'A' ^ 'B'
			if err := p.Verify(bad, rfc7515Now, &c); err != ErrBadSignature && err != ErrMalformed {
				t.Fatalf("tampered: %v", err)
			}
		})
	}

	t.Run("A.4 ES512", func(t *testing.T) {
		k, err := parseJWK([]byte(rfc7515A4JWK), algUnknown, false, "rfc7515")
		if err != nil {
			t.Fatal(err)
		}
		sig, _ := base64.RawURLEncoding.DecodeString(rfc7515A4Sig)
		if !k.accepts(algES512) || !k.verify(algES512, []byte(rfc7515A4Input), sig) {
			t.Fatal("RFC 7515 A.4 signature did not verify")
		}
		if k.verify(algES512, []byte(rfc7515A4Input+"x"), sig) {
			t.Fatal("A.4 signature verified another input")
		}
	})

	t.Run("A.5 none", func(t *testing.T) {
		p := newTestPolicy(t, Config{Keys: []KeyConfig{{JWKSFile: writeJWKS(t, `{"keys":[{"kty":"oct","k":"`+rfc7515A1Key+`"}]}`), Alg: "HS256"}}})
		var c Claims
		if err := p.Verify([]byte(rfc7515A5Token), rfc7515Now, &c); err != ErrAlgNotAllowed {
			t.Fatalf("alg none: %v", err)
		}
	})

	// The minting side must reproduce the deterministic signatures byte for byte.
	t.Run("mint reproduces A.1 and A.2", func(t *testing.T) {
		header, _ := base64.RawURLEncoding.DecodeString(strings.Split(rfc7515A1Token, ".")[0])
		payload, _ := base64.RawURLEncoding.DecodeString(rfc7515Payload)
		key, err := mint.ParseKey([]byte(`{"kty":"oct","k":"`+rfc7515A1Key+`"}`), "HS256")
		if err != nil {
			t.Fatal(err)
		}
		if got := string(signRaw(t, "HS256", string(header), string(payload), key)); got != rfc7515A1Token {
			t.Errorf("A.1 minted %s", got)
		}
		rsaJWK := `{"kty":"RSA","n":"` + rfc7515A2N + `","e":"AQAB","d":"` + rfc7515A2D + `","p":"` + rfc7515A2P + `","q":"` + rfc7515A2Q + `"}`
		key, err = mint.ParseKey([]byte(rsaJWK), "RS256")
		if err != nil {
			t.Fatal(err)
		}
		if got := string(signRaw(t, "RS256", `{"alg":"RS256"}`, string(payload), key)); got != rfc7515A2Token {
			t.Errorf("A.2 minted %s", got)
		}
	})
}

func TestRFC8037Vectors(t *testing.T) {
	// A.1/A.2: the public key is derived from the private seed.
	d, _ := base64.RawURLEncoding.DecodeString(rfc8037D)
	x, _ := base64.RawURLEncoding.DecodeString(rfc8037X)
	if got := ed25519.NewKeyFromSeed(d).Public().(ed25519.PublicKey); !got.Equal(ed25519.PublicKey(x)) {
		t.Fatal("RFC 8037 A.2: public key does not match the private key")
	}
	// A.4/A.5: verification of the example signature under both algorithm names.
	k, err := parseJWK([]byte(`{"kty":"OKP","crv":"Ed25519","x":"`+rfc8037X+`"}`), algUnknown, false, "rfc8037")
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := base64.RawURLEncoding.DecodeString(rfc8037Sig)
	for _, alg := range []algID{algEdDSA, algEd25519} {
		if !k.accepts(alg) || !k.verify(alg, []byte(rfc8037Input), sig) {
			t.Errorf("RFC 8037 A.4 signature did not verify as %s", alg)
		}
	}
	if k.accepts(algEd448) || k.accepts(algES256) {
		t.Error("an Ed25519 key accepts another algorithm")
	}
	// A.4: signing is deterministic, so mint must reproduce the signature exactly.
	key, err := mint.ParseKey([]byte(`{"kty":"OKP","crv":"Ed25519","d":"`+rfc8037D+`","x":"`+rfc8037X+`"}`), "EdDSA")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := mint.Method("EdDSA")
	got, err := m.Sign(rfc8037Input, key)
	if err != nil {
		t.Fatal(err)
	}
	if base64.RawURLEncoding.EncodeToString(got) != rfc8037Sig {
		t.Errorf("RFC 8037 A.4: minted signature %x", got)
	}
	// A JWK with private material is refused as a verification key.
	if _, err := parseJWK([]byte(`{"kty":"OKP","crv":"Ed25519","d":"`+rfc8037D+`","x":"`+rfc8037X+`"}`), algUnknown, false, "x"); err == nil {
		t.Error("a private JWK was accepted as a verification key")
	}
}
