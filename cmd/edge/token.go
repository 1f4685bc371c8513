package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
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
	keyPath := fs.String("key", "", "signing key: PEM private key, private JWK, or HMAC secret file")
	kid := fs.String("kid", "", "key ID header")
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
	if *alg == "" {
		fmt.Fprintln(stderr, "edge token: -alg is required")
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
	key, err := mint.LoadKey(*keyPath, *alg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
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
