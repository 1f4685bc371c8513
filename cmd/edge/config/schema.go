package config

// This file is the YAML schema of edge's configuration file: the contract's
// edge.example.yaml, key by key. README's configuration reference is written
// from it. cmd/edge adapts a File into the per-component Config structs
// (l4, tlsterm, l7/proxy, l7/jwt, l7/limit, lb); nothing else reads YAML.

// File is a whole configuration file.
type File struct {
	Pos `yaml:"-"`
	// Admin is the admin listener's address (metrics, health, /config). Empty
	// disables it. Never one of the public listeners.
	Admin string `yaml:"admin"`
	// TrustedProxies are the CIDRs (or single IPs) whose X-Forwarded-For and
	// PROXY protocol headers are believed.
	TrustedProxies []string              `yaml:"trusted_proxies"`
	Tuning         Tuning                `yaml:"tuning"`
	Listeners      []Listener            `yaml:"listeners"`
	Pools          map[string]*Pool      `yaml:"pools"`
	JWT            map[string]*JWTPolicy `yaml:"jwt"`
	RateLimits     map[string]*RateLimit `yaml:"rate_limits"`
	Redis          Redis                 `yaml:"redis"`
	Routes         []Route               `yaml:"routes"`
}

// Tuning holds process-wide knobs. Every key is also a flag of the same name
// with dashes (event_loops is -event-loops); a flag given on the command line
// wins over the file. Zero means the documented default.
type Tuning struct {
	Pos              `yaml:"-"`
	EventLoops       int      `yaml:"event_loops"`        // gnet event loops; 0 = GOMAXPROCS
	Accept           string   `yaml:"accept"`             // gnet (default) | go: plain net.Listener, to measure the gnet hand-off
	ReusePort        bool     `yaml:"reuse_port"`         // SO_REUSEPORT on listeners
	Serve            string   `yaml:"serve"`              // loop: plaintext HTTP served on the gnet event loops | goroutine (default): fasthttp, a goroutine per connection
	ReadBufferSize   int      `yaml:"read_buffer_size"`   // per-connection read buffer; also caps the request head (default max_header_bytes)
	WriteBufferSize  int      `yaml:"write_buffer_size"`  // per-connection write buffer (default 4096)
	MaxConns         int      `yaml:"max_conns"`          // open client connections, all listeners (default 100000)
	MaxConnsPerIP    int      `yaml:"max_conns_per_ip"`   // open client connections per source IP (default 0 = unlimited)
	IdleTimeout      Duration `yaml:"idle_timeout"`       // keep-alive idle time (default 60s)
	ReadTimeout      Duration `yaml:"read_timeout"`       // whole request head + body (default 10s)
	WriteTimeout     Duration `yaml:"write_timeout"`      // whole response write (default 0 = none, so large downloads stream)
	HandshakeTimeout Duration `yaml:"handshake_timeout"`  // first request head or ClientHello (default 10s)
	DrainTimeout     Duration `yaml:"drain_timeout"`      // SIGTERM: finish in-flight requests for at most this (default 15s)
	MaxHeaderBytes   int      `yaml:"max_header_bytes"`   // request head limit, 431 beyond (default 16384)
	MaxBodyBytes     int64    `yaml:"max_body_bytes"`     // request body limit, 413 beyond (default 10 MiB; a route may override)
	UpstreamMaxConns int      `yaml:"upstream_max_conns"` // connections per upstream endpoint (default 1024; a pool's max_conns_per_endpoint wins)
	LogLevel         string   `yaml:"log_level"`          // debug | info (default) | warn | error
	AccessLog        string   `yaml:"access_log"`         // path | - (stdout, default) | off
	LogFormat        string   `yaml:"log_format"`         // json (default) | text, for edge's own log lines
}

// Listener is one public address.
type Listener struct {
	Pos     `yaml:"-"`
	Name    string `yaml:"name"`
	Address string `yaml:"address"`
	// TLS terminates TLS here; SNIs under Passthrough are relayed untouched.
	TLS         *TLS          `yaml:"tls,omitempty"`
	Passthrough []Passthrough `yaml:"passthrough"`
	// RedirectHTTPS answers every plaintext request with a 308 to https.
	RedirectHTTPS bool `yaml:"redirect_https"`
	// Pool makes the listener pure L4: every connection is relayed to it.
	Pool string `yaml:"pool"`
	// ProxyProtocol accepts a PROXY v1/v2 header from trusted_proxies (and
	// refuses connections that send one from anywhere else).
	ProxyProtocol bool `yaml:"proxy_protocol"`
	// MaxConnsPerIP overrides tuning.max_conns_per_ip for this listener.
	MaxConnsPerIP int `yaml:"max_conns_per_ip"`
}

// TLS is a listener's termination settings.
type TLS struct {
	Pos                   `yaml:"-"`
	Certificates          []Certificate `yaml:"certificates"`
	MinVersion            string        `yaml:"min_version"`       // "1.2" (default) | "1.3"
	CurvePreferences      []string      `yaml:"curve_preferences"` // default: Go's, X25519MLKEM768 first
	ClientCA              string        `yaml:"client_ca"`         // PEM bundle: require and verify client certificates (mTLS)
	ClientAuth            string        `yaml:"client_auth"`       // require (default with client_ca) | request
	SessionTicketKeysFile string        `yaml:"session_ticket_keys_file"`
	TicketKeyRotation     Duration      `yaml:"ticket_key_rotation"` // default 1h; not with session_ticket_keys_file
}

// Certificate is a PEM certificate chain and its key.
type Certificate struct {
	Pos  `yaml:"-"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Passthrough relays connections whose SNI is SNI to Pool without terminating.
type Passthrough struct {
	Pos  `yaml:"-"`
	SNI  string `yaml:"sni"`
	Pool string `yaml:"pool"`
}

// Pool is a set of endpoints (pods) and how to balance over them.
type Pool struct {
	Pos `yaml:"-"`
	// Endpoints are host:port or name=host:port (the name is the identity
	// consistent hashing uses, so a pod that comes back on a new IP keeps its
	// keys).
	Endpoints           []Endpoint   `yaml:"endpoints"`
	Balance             string       `yaml:"balance"` // round_robin (default) | least_request | random | consistent_hash
	HashOn              string       `yaml:"hash_on"` // client_ip | sni | header:NAME | cookie:NAME | claim:NAME
	HashBalanceFactor   float64      `yaml:"hash_balance_factor"`
	HealthCheck         *HealthCheck `yaml:"health_check,omitempty"`
	Outlier             *Outlier     `yaml:"outlier_detection,omitempty"`
	PanicThreshold      float64      `yaml:"panic_threshold"`  // percent of healthy endpoints under which all are used (default 0: only when none is healthy)
	ConnectTimeout      Duration     `yaml:"connect_timeout"`  // default 1s
	ResponseTimeout     Duration     `yaml:"response_timeout"` // default 15s
	Retries             int          `yaml:"retries"`
	RetryBudget         *float64     `yaml:"retry_budget,omitempty"` // percent of extra load retries may add (default 20)
	MaxConnsPerEndpoint int          `yaml:"max_conns_per_endpoint"`
	MaxPending          int          `yaml:"max_pending"`
	SlowStart           Duration     `yaml:"slow_start"`
	ProxyProtocol       string       `yaml:"proxy_protocol"` // "" | v2: L4 relays write a PROXY v2 header first
	Pipeline            int          `yaml:"pipeline"`       // connections per endpoint pipelining idempotent requests (0: off)
	PipelineDepth       int          `yaml:"pipeline_depth"` // requests in flight per pipeline connection (default 16)
}

// Endpoint is one endpoint string; it keeps its own line for error reports.
type Endpoint struct {
	Value string
	Line  int
}

// ListItem is one string of a list that keeps its own line for error
// reports (an IP list written one entry per line).
type ListItem struct {
	Value string
	Line  int
	bad   bool // not a string: already reported
}

// HealthCheck is an active check of every endpoint.
type HealthCheck struct {
	Pos          `yaml:"-"`
	Path         string   `yaml:"path"`          // HTTP GET path; empty with tcp: true means a TCP connect check
	TCP          bool     `yaml:"tcp"`           // connect-only check
	ExpectStatus int      `yaml:"expect_status"` // default: any 2xx
	Interval     Duration `yaml:"interval"`      // default 5s
	Timeout      Duration `yaml:"timeout"`       // default 1s
	Fall         int      `yaml:"fall"`          // consecutive failures to mark down (default 3)
	Rise         int      `yaml:"rise"`          // consecutive successes to mark up (default 2)
}

// Outlier is passive ejection from real traffic.
type Outlier struct {
	Pos                 `yaml:"-"`
	Disabled            bool     `yaml:"disabled"`
	ConsecutiveFailures int      `yaml:"consecutive_failures"` // connect failures or 5xx in a row (default 5, or 3 connect failures)
	BaseEjection        Duration `yaml:"base_ejection"`        // first ejection; doubles per repeat (default 30s)
	MaxEjection         Duration `yaml:"max_ejection"`         // default 5m
}

// JWTPolicy is a named set of keys and claim rules routes refer to.
type JWTPolicy struct {
	Pos           `yaml:"-"`
	Keys          []JWTKey          `yaml:"keys"`
	Algorithms    []string          `yaml:"algorithms"`
	Issuer        string            `yaml:"issuer"`
	Audience      StringOrList      `yaml:"audience"`
	Leeway        Duration          `yaml:"leeway"`
	RequireExp    *bool             `yaml:"require_exp,omitempty"`
	ForwardClaims map[string]string `yaml:"forward_claims"` // claim -> upstream header
	CacheBytes    int               `yaml:"cache_bytes"`    // verified-signature cache (default 8 MiB)
}

// JWTKey is one key source. Exactly one of the source keys is set.
type JWTKey struct {
	Pos            `yaml:"-"`
	JWKSURL        string   `yaml:"jwks_url"`
	JWKSFile       string   `yaml:"jwks_file"`
	PEMFile        string   `yaml:"pem_file"`
	HMACSecretFile string   `yaml:"hmac_secret_file"`
	Alg            string   `yaml:"alg"`
	Kid            string   `yaml:"kid"`
	Refresh        Duration `yaml:"refresh"`
}

// RateLimit is a named token bucket routes refer to.
type RateLimit struct {
	Pos          `yaml:"-"`
	Key          string   `yaml:"key"` // client_ip | header:NAME | claim:NAME | route
	Rate         float64  `yaml:"rate"`
	Per          Duration `yaml:"per"`
	Burst        int      `yaml:"burst"`
	Store        string   `yaml:"store"`          // local (default) | redis
	OnStoreError string   `yaml:"on_store_error"` // allow (default) | deny
	MaxKeys      int      `yaml:"max_keys"`
	IPv6Prefix   int      `yaml:"ipv6_prefix"` // client_ip keys aggregate IPv6 to this prefix (default 64)
	Lease        int      `yaml:"lease"`       // redis: tokens leased per round trip (default: burst/10, at least 1)
}

// Redis is the store for global rate limits.
type Redis struct {
	Pos      `yaml:"-"`
	Address  string   `yaml:"address"`
	Password string   `yaml:"password"`
	DB       int      `yaml:"db"`
	Timeout  Duration `yaml:"timeout"` // default 100ms
}

// Route sends host + path prefix to a pool, through the route's checks.
type Route struct {
	Pos             `yaml:"-"`
	Name            string       `yaml:"name"` // labels metrics and logs (default host+prefix, "*" for any host)
	Host            string       `yaml:"host"`
	Prefix          string       `yaml:"prefix"`
	Pool            string       `yaml:"pool"`
	JWT             string       `yaml:"jwt"`
	Scopes          []string     `yaml:"scopes"`
	RateLimit       StringOrList `yaml:"rate_limit"`
	Methods         []string     `yaml:"methods"`
	StripPrefix     bool         `yaml:"strip_prefix"`
	Listeners       []string     `yaml:"listeners"`
	RequestHeaders  HeaderOps    `yaml:"request_headers"`
	ResponseHeaders HeaderOps    `yaml:"response_headers"`
	Compress        []string     `yaml:"compress"`
	MaxBodyBytes    int64        `yaml:"max_body_bytes"`
	Timeout         Duration     `yaml:"timeout"` // overrides the pool's response_timeout
	// AllowIPs, when set, admits only clients (the real client IP, see
	// trusted_proxies) inside one of these CIDRs or IPs; DenyIPs refuses
	// the clients inside them and wins over AllowIPs. Both answer 403.
	AllowIPs []ListItem `yaml:"allow_ips"`
	DenyIPs  []ListItem `yaml:"deny_ips"`
}

// HeaderOps adds and removes headers.
type HeaderOps struct {
	Pos    `yaml:"-"`
	Add    map[string]string `yaml:"add"`
	Remove []string          `yaml:"remove"`
}

// StringOrList is a YAML value that may be one string or a list of them
// (aud: "x" or aud: [x, y]).
type StringOrList []string
