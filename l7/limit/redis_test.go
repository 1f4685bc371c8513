package limit

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const redisServer = "/usr/bin/redis-server"

// testRedis is a redis-server the test started on a loopback port.
type testRedis struct {
	t    testing.TB
	port int
	cmd  *exec.Cmd
}

// startRedis starts redis-server on a free loopback port (or on port, if
// non-zero, to restart one), without persistence, and waits until it answers.
func startRedis(t testing.TB, port int) *testRedis {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if _, err := os.Stat(redisServer); err != nil {
			t.Skip("redis-server is not installed (.ci/run installs it)")
		}
		path = redisServer
	}
	if port == 0 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	cmd := exec.Command(path, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--logfile", "")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	r := &testRedis{t: t, port: port, cmd: cmd}
	t.Cleanup(r.stop)
	for i := 0; ; i++ {
		if r.ping() == nil {
			return r
		}
		if i == 500 {
			r.stop()
			t.Fatalf("redis-server on port %d never answered PING", port)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *testRedis) addr() string { return fmt.Sprintf("127.0.0.1:%d", r.port) }

// do sends one inline command and returns the first reply line.
func (r *testRedis) do(cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", r.addr(), time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func (r *testRedis) ping() error {
	got, err := r.do("PING")
	if err == nil && got != "+PONG" {
		err = fmt.Errorf("PING answered %q", got)
	}
	return err
}

func (r *testRedis) stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
}

func newRedisStore(t testing.TB, r *testRedis) *RedisStore {
	s := NewRedisStore(RedisConfig{Address: r.addr(), Timeout: time.Second})
	t.Cleanup(func() { s.Close() })
	return s
}

// TestRedisLeaseScript checks the Lua script's arithmetic on a real Redis.
func TestRedisLeaseScript(t *testing.T) {
	r := startRedis(t, 0)
	s := newRedisStore(t, r)
	ctx := context.Background()
	req := func(want, back int) LeaseResult {
		t.Helper()
		res, err := s.Lease(ctx, LeaseRequest{Key: "script", Interval: time.Hour, Burst: 5, Want: want, GiveBack: back})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for i, tc := range []struct {
		want, back int
		res        LeaseResult
	}{
		{3, 0, LeaseResult{Granted: 3, Remaining: 2}},
		{3, 0, LeaseResult{Granted: 2, Remaining: 0}},
		{1, 1, LeaseResult{Granted: 1, Remaining: 0}},
		{2, 2, LeaseResult{Granted: 2, Remaining: 0}},
		{5, 9, LeaseResult{Granted: 5, Remaining: 0}}, // a give-back never overfills
	} {
		if got := req(tc.want, tc.back); got != tc.res {
			t.Errorf("lease %d (want %d, give back %d) = %+v, want %+v", i, tc.want, tc.back, got, tc.res)
		}
	}
	// Empty: the wait is until 2 tokens are back, two hours less a few µs.
	got := req(2, 0)
	if got.Granted != 0 || got.Wait <= 2*time.Hour-time.Second || got.Wait > 2*time.Hour {
		t.Errorf("lease from an empty bucket = %+v, want nothing and a wait of about 2h", got)
	}
	// The key expires when the bucket would be full: about 5h from now.
	ttl, err := r.do("PTTL edge:rl:script")
	if ms, _ := strconv.Atoi(strings.TrimPrefix(ttl, ":")); err != nil || ms < 5*3600_000-1000 || ms > 5*3600_000 {
		t.Errorf("PTTL = %q, %v; want about 5h (18000000 ms)", ttl, err)
	}
	// A fast bucket refills in real time: 1000/s, one token back after 1ms.
	fast := LeaseRequest{Key: "fast", Interval: time.Millisecond, Burst: 2, Want: 2}
	if res, _ := s.Lease(ctx, fast); res.Granted != 2 {
		t.Fatalf("fast bucket first lease %+v", res)
	}
	for i := 0; ; i++ {
		res, err := s.Lease(ctx, fast)
		if err != nil {
			t.Fatal(err)
		}
		if res.Granted > 0 {
			break
		}
		if res.Wait <= 0 || res.Wait > 2*time.Millisecond || i > 1000 {
			t.Fatalf("fast bucket: %+v after %d tries", res, i)
		}
		time.Sleep(res.Wait)
	}
}

func redisConfig(s Store) Config {
	cfg := globalConfig(s)
	cfg.Burst, cfg.Lease = 20, 4
	cfg.StoreTimeout = time.Second
	return cfg
}

// TestRedisTwoReplicas: two Limiters with their own Redis clients (two edge
// replicas) share one limit. While Redis keeps its state they admit exactly
// burst in total; when Redis loses its data with leases outstanding (FLUSHALL,
// as a restart without persistence would), they admit at most burst +
// replicas x lease.
func TestRedisTwoReplicas(t *testing.T) {
	r := startRedis(t, 0)
	a := mustNew(t, redisConfig(newRedisStore(t, r)))
	b := mustNew(t, redisConfig(newRedisStore(t, r)))
	drain := func(key []byte) (admitted int) {
		for i := 0; i < 200; i++ {
			ra, rb := a.Allow(key, t0), b.Allow(key, t0)
			if !ra.Allowed && !rb.Allowed {
				return admitted
			}
			admitted += btoi(ra.Allowed) + btoi(rb.Allowed)
		}
		t.Fatal("replicas never stopped admitting")
		return 0
	}
	if got := drain([]byte("shared")); got != 20 {
		t.Errorf("two replicas admitted %d, want exactly burst 20", got)
	}
	// Concurrent requests from both replicas: still exactly burst.
	var mu sync.Mutex
	var wg sync.WaitGroup
	admitted := 0
	for _, l := range []*Limiter{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for i := 0; i < 50; i++ {
				n += btoi(l.Allow([]byte("concurrent"), t0).Allowed)
			}
			mu.Lock()
			admitted += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	// Leases still held by a replica when its goroutines stopped are not spent.
	if admitted > 20 || admitted < 20-2*4 {
		t.Errorf("concurrent replicas admitted %d, want 12..20", admitted)
	}

	key := []byte("forgotten")
	admitted = btoi(a.Allow(key, t0).Allowed) + btoi(b.Allow(key, t0).Allowed)
	a.Close()
	b.Close()
	if got, err := r.do("FLUSHALL"); err != nil || got != "+OK" {
		t.Fatalf("FLUSHALL: %q, %v", got, err)
	}
	admitted += drain(key)
	if admitted < 20 || admitted > 20+2*4 {
		t.Errorf("after Redis lost its data, replicas admitted %d, want 20..28 (burst + replicas x lease)", admitted)
	}
	t.Logf("after FLUSHALL with leases outstanding: admitted %d (burst 20, bound 28)", admitted)
	if st := a.Stats(); st.StoreErrors != 0 || st.StoreFallbacks != 0 {
		t.Errorf("replica a stats %+v: no errors expected", st)
	}
}

// TestRedisOutage kills Redis mid-test: keys holding a lease keep spending it,
// new keys follow on_store_error, and when Redis comes back on the same port the
// limit is enforced through it again.
func TestRedisOutage(t *testing.T) {
	for _, policy := range []StoreErrorPolicy{StoreErrorAllow, StoreErrorDeny} {
		t.Run(policy.String(), func(t *testing.T) {
			r := startRedis(t, 0)
			var mu sync.Mutex
			var errs []string
			recovered := 0
			cfg := redisConfig(newRedisStore(t, r))
			cfg.Lease = 10
			cfg.OnStoreError = policy
			cfg.StoreRetry = time.Second
			cfg.StoreTimeout = 500 * time.Millisecond
			cfg.StoreErrorHook = func(err error) { mu.Lock(); errs = append(errs, err.Error()); mu.Unlock() }
			cfg.StoreRecoverHook = func(time.Duration) { mu.Lock(); recovered++; mu.Unlock() }
			l := mustNew(t, cfg)

			now := t0
			if !l.Allow([]byte("leased"), now).Allowed {
				t.Fatal("first request refused")
			}
			l.Close()
			r.stop()

			// The lease (10 tokens, 9 left) is spent without Redis.
			for i := 0; i < 5; i++ {
				if !l.Allow([]byte("leased"), now).Allowed {
					t.Errorf("leased request %d refused while Redis is down", i)
				}
			}
			l.Close() // the background lease call (low water) fails: Redis is down
			// New keys follow the policy.
			for i := 0; i < 3; i++ {
				r := l.Allow(fmt.Appendf(nil, "new-%d", i), now)
				if r.Allowed != (policy == StoreErrorAllow) {
					t.Errorf("new key %d with Redis down: allowed=%v under %v", i, r.Allowed, policy)
				}
			}
			l.Close()
			st := l.Stats()
			mu.Lock()
			nerrs := len(errs)
			mu.Unlock()
			if !st.StoreDown || st.StoreErrors != 1 || st.StoreFallbacks != 3 || nerrs != 1 {
				t.Errorf("with Redis down: stats %+v, %d hook calls; want down, 1 error, 3 fallbacks, 1 hook call", st, nerrs)
			}

			restarted := startRedis(t, r.port)
			// Probe once per StoreRetry on the timeline until go-redis has
			// redialled (it may hold a dial error back for up to a second).
			var got Result
			for i := 0; ; i++ {
				now = now.Add(2 * time.Second)
				got = l.Allow([]byte("after"), now)
				l.Close()
				if !l.Stats().StoreDown {
					break
				}
				if i == 100 {
					t.Fatalf("limiter never recovered after Redis came back: %+v", l.Stats())
				}
				time.Sleep(50 * time.Millisecond)
			}
			if !got.Allowed {
				t.Errorf("first request after recovery refused: %+v", got)
			}
			admitted := 1
			for i := 0; i < 40; i++ {
				admitted += btoi(l.Allow([]byte("after"), now).Allowed)
			}
			if admitted != 20 {
				t.Errorf("after recovery admitted %d, want burst 20", admitted)
			}
			if v, err := restarted.do(`EXISTS edge:rl:g:v=after`); err != nil || v != ":1" {
				t.Errorf("bucket not in the restarted Redis: %q, %v", v, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if recovered != 1 {
				t.Errorf("recover hook called %d times, want 1", recovered)
			}
			t.Logf("%v: errors logged: %q", policy, errs)
		})
	}
}
