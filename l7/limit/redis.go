package limit

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// DefaultRedisTimeout bounds each Redis command when RedisConfig.Timeout is 0.
const DefaultRedisTimeout = 100 * time.Millisecond

// leaseScript is GCRA (see gcra in table.go) run inside Redis, in microseconds
// of Redis's own clock (TIME), so replicas need not agree on the time. A bucket
// is one string key holding its TAT; it expires when the bucket is full again, so
// idle keys cost Redis nothing. Lua numbers are doubles: microsecond
// timestamps stay exact below 2^53 (the year 2255).
//
// KEYS[1] bucket; ARGV interval_us, burst, want, give_back.
// Returns {granted, remaining, wait_us}; wait_us, when nothing was granted, is
// the time until want tokens are available.
const leaseScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local back = tonumber(ARGV[4])
local tau = burst * interval
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
if back > 0 then tat = math.max(now, tat - back * interval) end
local avail = math.floor((tau - (tat - now)) / interval)
if avail < 0 then avail = 0 end
local granted = math.min(want, avail)
tat = tat + granted * interval
if tat > now then
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
else
  redis.call('DEL', KEYS[1])
end
local wait = 0
if granted == 0 then
  wait = tat + math.min(want, burst) * interval - tau - now
end
return {granted, avail - granted, wait}
`

// RedisConfig configures a RedisStore. The zero value talks to 127.0.0.1:6379
// with timeouts short enough that a slow Redis never holds a request long.
type RedisConfig struct {
	// Address is host:port; empty means 127.0.0.1:6379.
	Address  string
	Username string
	Password string
	DB       int
	// Prefix starts every bucket key; empty means "edge:rl:".
	Prefix string
	// Timeout bounds dialing and each read and write; zero means 100ms. Each
	// lease call is further bounded by Config.StoreTimeout.
	Timeout time.Duration
	// PoolSize is the most connections kept; zero means go-redis's default.
	PoolSize int
}

// RedisStore is a Store in Redis (go-redis v9), one Lua script call per lease.
// It is safe for concurrent use. Close releases its connections.
type RedisStore struct {
	client *redis.Client
	script *redis.Script
	prefix string
}

// NewRedisStore returns a RedisStore for cfg. It does not connect: the first
// lease does, so an edge starts (and follows on_store_error) while Redis is down.
func NewRedisStore(cfg RedisConfig) *RedisStore {
	if cfg.Address == "" {
		cfg.Address = "127.0.0.1:6379"
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "edge:rl:"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultRedisTimeout
	}
	c := redis.NewClient(&redis.Options{
		Addr:                  cfg.Address,
		Username:              cfg.Username,
		Password:              cfg.Password,
		DB:                    cfg.DB,
		DialTimeout:           cfg.Timeout,
		ReadTimeout:           cfg.Timeout,
		WriteTimeout:          cfg.Timeout,
		PoolTimeout:           cfg.Timeout,
		PoolSize:              cfg.PoolSize,
		ContextTimeoutEnabled: true,
		// A lease call is not idempotent: a retry after a lost reply could
		// grant twice. The limiter's own probe/backoff replaces retries.
		MaxRetries:               -1,
		DialerRetries:            1,
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	return &RedisStore{client: c, script: redis.NewScript(leaseScript), prefix: cfg.Prefix}
}

// SetRedisLog sends go-redis's own log lines (its connection pool failing to
// dial, for one) to fn, one message per call without the trailing newline,
// instead of go-redis's default: plain-text lines on stderr, which would
// break a structured log. nil discards them. go-redis keeps one logger per
// process, so this applies to every RedisStore, existing or not.
func SetRedisLog(fn func(msg string)) {
	if fn == nil {
		fn = func(string) {}
	}
	redis.SetLogger(redisLog(fn))
}

// redisLog adapts a func to go-redis's logging interface.
type redisLog func(msg string)

func (l redisLog) Printf(_ context.Context, format string, args ...any) {
	l(strings.TrimRight(fmt.Sprintf(format, args...), "\n"))
}

// Lease implements Store with one EVALSHA (EVAL the first time).
func (s *RedisStore) Lease(ctx context.Context, req LeaseRequest) (LeaseResult, error) {
	us := max(req.Interval.Microseconds(), 1)
	v, err := s.script.Run(ctx, s.client, []string{s.prefix + req.Key}, us, req.Burst, req.Want, req.GiveBack).Int64Slice()
	if err != nil {
		return LeaseResult{}, err
	}
	if len(v) != 3 {
		return LeaseResult{}, fmt.Errorf("limit: redis lease script returned %d values, want 3", len(v))
	}
	return LeaseResult{Granted: int(v[0]), Remaining: int(v[1]), Wait: time.Duration(v[2]) * time.Microsecond}, nil
}

// Close closes the store's connections.
func (s *RedisStore) Close() error { return s.client.Close() }
