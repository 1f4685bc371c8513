package jwt

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"example.com/edge/l7/jwt/mint"
)

func cacheHits(p *Policy, token []byte, now time.Time) bool {
	return p.cache != nil && p.cache.lookup(token, now) != nil
}

func TestCacheBoundedAndClock(t *testing.T) {
	cfg := testConfig(t)
	cfg.CacheBytes = 16 << 10 // one shard, a handful of ES256 tokens
	p := newTestPolicy(t, cfg)
	var c Claims
	tok := func(i int) []byte {
		return mintToken(t, "ES256", func(o *mint.Options) { o.Subject = fmt.Sprintf("user-%03d", i) })
	}
	hot := tok(0)
	if err := p.Verify(hot, testNow, &c); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 200; i++ {
		if err := p.Verify(tok(i), testNow, &c); err != nil {
			t.Fatal(err)
		}
		// The hot token is used between every insert, so CLOCK keeps it.
		if err := p.Verify(hot, testNow, &c); err != nil {
			t.Fatal(err)
		}
		if !cacheHits(p, hot, testNow) {
			t.Fatalf("after %d inserts the hot token was evicted", i)
		}
		if entries, size := p.cache.len(); size > cfg.CacheBytes || entries < 2 {
			t.Fatalf("after %d inserts: %d entries, %d bytes (cap %d)", i, entries, size, cfg.CacheBytes)
		}
	}
	if cacheHits(p, tok(1), testNow) {
		t.Error("an old cold token survived 200 inserts into a 16 KiB cache")
	}
}

func TestCacheNeverAdmitsAForgery(t *testing.T) {
	p := newTestPolicy(t, testConfig(t))
	good := mintToken(t, "ES256", nil)
	var c Claims
	if err := p.Verify(good, testNow, &c); err != nil || !cacheHits(p, good, testNow) {
		t.Fatalf("Verify = %v, cached = %v", err, cacheHits(p, good, testNow))
	}
	// Same length, same signature (so the same cache slot), another subject.
	parts := strings.Split(string(good), ".")
	payload, _ := appendBase64URL(nil, []byte(parts[1]))
	forgedPayload := strings.Replace(string(payload), "user-42", "user-43", 1)
	forged := []byte(parts[0] + "." + b64u(forgedPayload) + "." + parts[2])
	if len(forged) != len(good) || p.cache.hash(forged) != p.cache.hash(good) {
		t.Fatal("test setup: forged token should share the cache slot")
	}
	for range 2 {
		if err := p.Verify(forged, testNow, &c); err != ErrBadSignature {
			t.Fatalf("forged token sharing the slot: %v", err)
		}
	}
	if err := p.Verify(good, testNow, &c); err != nil || !cacheHits(p, good, testNow) {
		t.Fatalf("the genuine entry was displaced: %v", err)
	}
}

func TestCacheExpiresAndFollowsKeyRemoval(t *testing.T) {
	dir := t.TempDir()
	pem := filepath.Join(dir, "es.pub")
	data, err := os.ReadFile(fixturePath("ES256", ".pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pem, data, 0o600); err != nil {
		t.Fatal(err)
	}
	p := newTestPolicy(t, Config{Keys: []KeyConfig{{PEMFile: pem, Kid: "es256-1"}}})
	tok := mintToken(t, "ES256", func(o *mint.Options) { o.Now, o.TTL = testNow, time.Minute })
	var c Claims
	if err := p.Verify(tok, testNow, &c); err != nil {
		t.Fatal(err)
	}
	if !cacheHits(p, tok, testNow) {
		t.Fatal("not cached")
	}
	// The entry lives until exp: one second later (with no leeway) it is gone.
	exp := testNow.Add(time.Minute)
	if !cacheHits(p, tok, exp.Add(-time.Second)) || cacheHits(p, tok, exp) {
		t.Fatal("cache entry does not expire at exp")
	}
	// Reloading the same file keeps the key's identity, and so the entry.
	if err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	if !cacheHits(p, tok, testNow) {
		t.Fatal("reloading an unchanged key dropped its cache entries")
	}
	// Replacing the key retires it: the cached token must be verified again, and fail.
	other, err := os.ReadFile(fixturePath("ES256", ".pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	kp, err := mint.GenerateKey("ES256", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(kp.PublicPEM) == string(other) {
		t.Fatal("generated the fixture key")
	}
	if err := os.WriteFile(pem, kp.PublicPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(tok, testNow, &c); err != ErrBadSignature {
		t.Fatalf("token of a removed key: %v, want %v", err, ErrBadSignature)
	}
}

func TestCacheConcurrent(t *testing.T) {
	cfg := testConfig(t)
	cfg.CacheBytes = 32 << 10
	p := newTestPolicy(t, cfg)
	var tokens [][]byte
	for i := range 24 {
		alg := []string{"ES256", "EdDSA", "HS256"}[i%3]
		tokens = append(tokens, mintToken(t, alg, func(o *mint.Options) { o.Subject = fmt.Sprintf("u%d", i) }))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c Claims
			for i := range 300 {
				tok := tokens[(i*7+g)%len(tokens)]
				if err := p.Verify(tok, testNow, &c); err != nil {
					errs <- err
					return
				}
				if sub, _ := c.Sub(); !strings.HasPrefix(string(sub), "u") {
					errs <- fmt.Errorf("sub %q", sub)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, size := p.cache.len(); size > cfg.CacheBytes {
		t.Fatalf("cache holds %d bytes, cap %d", size, cfg.CacheBytes)
	}
}
