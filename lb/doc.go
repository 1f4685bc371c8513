// Package lb picks endpoints for requests and tracks their health. It knows nothing of HTTP:
// callers hash their own keys, run their own protocol-specific checks through Checker, and
// report each request's Outcome.
//
// A Pool is built from one Config (NewPool), started (Start runs active health checks and the
// timers of passive ejection and slow start), asked for endpoints on the request path (Pick,
// then Done exactly once), and closed (Close). A reload builds the next Pool with the current
// one as prev, which carries the health state of endpoints that stay.
//
// Balancing policies: smooth weighted round robin, least request (power of two choices),
// random, and consistent hashing with a Maglev table (optionally with bounded loads). Maglev
// tables are also exported on their own (NewMaglev) for the L4 relay.
//
// Time is always passed in (now), so health transitions can be tested on a fixed timeline:
// RecordCheck, CheckAll, Tick and Done take the time; only Start reads the clock.
package lb
