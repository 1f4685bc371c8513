package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"example.com/edge/l7/jwt/mint"
)

// claimFlags collects repeated -claim k=v flags.
type claimFlags []string

func (c *claimFlags) String() string     { return strings.Join(*c, ",") }
func (c *claimFlags) Set(v string) error { *c = append(*c, v); return nil }

// cmdToken mints a signed JWT (contract: edge token), or with -genkey
// writes a fresh key pair that policies and `edge token` can use.
func cmdToken(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edge token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	alg := fs.String("alg", "", "algorithm: "+strings.Join(mint.Algorithms(), ", "))
	keyPath := fs.String("key", "", "signing key: PEM private key, private JWK (or a JWK Set holding it), or HMAC secret file")
	kid := fs.String("kid", "", "key ID header; also picks the key of a JWK Set (default: the JWK's own kid)")
	sub := fs.String("sub", "", "subject claim")
	aud := fs.String("aud", "", "audience claim (comma-separated for several)")
	iss := fs.String("iss", "", "issuer claim")
	scope := fs.String("scope", "", "space-separated scopes (scope claim)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime: exp = now + ttl")
	noExp := fs.Bool("no-exp", false, "omit exp (only for policies with require_exp: false)")
	genkey := fs.String("genkey", "", "instead of a token, write a new key for -alg to PREFIX.key (private; the secret for HS*), PREFIX.pub (public PEM; not for HS*) and PREFIX.jwks.json (public JWK Set; the secret as an oct JWK for HS*)")
	var claims claimFlags
	fs.Var(&claims, "claim", "extra claim name=value (repeatable; JSON values such as 3, true or [\"a\"] are typed)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: edge token -alg ALG -key FILE [-kid K] [-sub S] [-aud A] [-iss I] [-scope S] [-ttl D] [-claim k=v ...]\n       edge token -alg ALG -genkey PREFIX [-kid K]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		return extraArgs(stderr, "edge token", fs.Args(), fs.Usage)
	}
	if *alg == "" {
		fmt.Fprintln(stderr, "edge token: -alg is required")
		return 2
	}
	if !slices.Contains(mint.Algorithms(), *alg) {
		fmt.Fprintf(stderr, "edge token: unknown algorithm %q (want one of %s)\n", *alg, strings.Join(mint.Algorithms(), ", "))
		return 2
	}
	if *genkey != "" {
		written, err := writeKeyPair(*genkey, *alg, *kid)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "wrote %s\n", strings.Join(written, ", "))
		return 0
	}
	if *keyPath == "" {
		fmt.Fprintln(stderr, "edge token: -key is required")
		return 2
	}
	key, jwkKid, err := loadSigningKey(*keyPath, *alg, *kid)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *kid == "" {
		*kid = jwkKid
	}
	opts := mint.Options{Alg: *alg, Kid: *kid, Subject: *sub, Issuer: *iss, Scope: *scope, TTL: *ttl, NoExp: *noExp}
	if *aud != "" {
		opts.Audience = strings.Split(*aud, ",")
	}
	for _, c := range claims {
		name, v, err := mint.ParseClaim(c)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		if opts.Claims == nil {
			opts.Claims = map[string]any{}
		}
		opts.Claims[name] = v
	}
	tok, err := mint.Sign(opts, key)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

// writeKeyPair writes the key files for alg and returns their names (an
// HMAC secret has no public half, so no .pub).
func writeKeyPair(prefix, alg, kid string) ([]string, error) {
	kp, err := mint.GenerateKey(alg, kid, nil)
	if err != nil {
		return nil, err
	}
	priv := kp.PrivatePEM
	if kp.Secret != nil {
		priv = kp.Secret
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{prefix + ".key", priv, 0o600},
		{prefix + ".pub", kp.PublicPEM, 0o644},
		{prefix + ".jwks.json", kp.PublicJWKS(), 0o644},
	}
	var written []string
	for _, f := range files {
		if f.data == nil {
			continue
		}
		if err := os.WriteFile(f.name, f.data, f.mode); err != nil {
			return written, fmt.Errorf("edge token: %w", err)
		}
		written = append(written, f.name)
	}
	return written, nil
}

// loadSigningKey reads -key for alg. A JWK Set is accepted when it holds
// one key, or when kid picks one; a JWK's kid is returned for the header.
func loadSigningKey(path, alg, kid string) (key any, jwkKid string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("edge token: -key: %w", err)
	}
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '{' {
		jwk, err := pickJWK(trimmed, kid)
		if err != nil {
			return nil, "", fmt.Errorf("edge token: -key %s: %w", path, err)
		}
		data = jwk
		var hdr struct {
			Kid string `json:"kid"`
		}
		json.Unmarshal(jwk, &hdr) //nolint:errcheck // pickJWK parsed it
		jwkKid = hdr.Kid
	}
	key, err = mint.ParseKey(data, alg)
	if err != nil {
		return nil, "", fmt.Errorf("edge token: -key %s: %w", path, err)
	}
	return key, jwkKid, nil
}

// pickJWK returns the private JWK in data: data itself, or the one key of a
// JWK Set (the one whose kid is kid, when kid is set).
func pickJWK(data []byte, kid string) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, fmt.Errorf("not a JWK or JWK Set: %w", err)
	}
	type member struct {
		Kty string `json:"kty"`
		Kid string `json:"kid"`
		D   string `json:"d"`
	}
	var m member
	where := "the JWK"
	if raw, ok := obj["keys"]; ok {
		var keys []json.RawMessage
		if err := json.Unmarshal(raw, &keys); err != nil {
			return nil, errors.New(`a JWK Set whose "keys" is not an array`)
		}
		var kids []string
		pick := -1
		for i, k := range keys {
			var km member
			if err := json.Unmarshal(k, &km); err != nil {
				return nil, fmt.Errorf("a JWK Set whose keys[%d] is not a JWK object", i)
			}
			kids = append(kids, strconv.Quote(km.Kid))
			if kid == "" || km.Kid == kid {
				if pick >= 0 && kid != "" {
					return nil, fmt.Errorf("a JWK Set with more than one key of kid %q", kid)
				}
				pick = i
			}
		}
		switch {
		case len(keys) == 0:
			return nil, errors.New("an empty JWK Set")
		case kid != "" && pick < 0:
			return nil, fmt.Errorf("a JWK Set with no key of kid %q (kids: %s)", kid, strings.Join(kids, ", "))
		case kid == "" && len(keys) > 1:
			return nil, fmt.Errorf("a JWK Set of %d keys: pick one with -kid (kids: %s)", len(keys), strings.Join(kids, ", "))
		}
		data = keys[pick]
		json.Unmarshal(data, &m) //nolint:errcheck // decoded above
		where = fmt.Sprintf("the JWK Set's keys[%d]", pick)
	} else if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("not a JWK: %w", err)
	}
	if m.Kty == "" {
		return nil, fmt.Errorf("%s has no \"kty\"", where)
	}
	if m.Kty != "oct" && m.D == "" {
		return nil, fmt.Errorf("%s is a public key (no \"d\"); sign with the private key (-genkey writes it to PREFIX.key)", where)
	}
	return data, nil
}
