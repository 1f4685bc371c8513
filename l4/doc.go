// Package l4 is the edge's front door: it accepts TCP connections on gnet
// event loops, enforces connection limits, reads PROXY protocol headers from
// trusted load balancers, classifies the first bytes (a TLS ClientHello with
// its SNI and ALPN, or a plaintext HTTP request head), and then either hands
// the connection to Go code for TLS termination and L7, or relays it raw to
// an upstream chosen by consistent hashing.
//
// # What a connection meets
//
//  1. Accept on an event loop. OnOpen counts it against Config.MaxConns,
//     ListenerConfig.MaxConns and MaxConnsPerIP before anything else is
//     spent on it; over a limit it is closed at once.
//  2. PROXY protocol (v1 or v2) when the listener enables it: required from
//     TrustedProxies (the specification forbids guessing), refused from
//     anyone else. The declared client becomes RemoteAddr, the per-IP key
//     and the relay hash key.
//  3. First bytes, accumulated across reads on the loop: a ClientHello
//     (capped at 16 KiB, fragmented records reassembled) or an HTTP head up
//     to its empty line. A connection that has not got there within
//     HandshakeTimeout is closed by a sweep that OnTick posts to each loop;
//     waiting connections cost a small struct and what they have sent.
//  4. Hand-off. The loop duplicates the descriptor and returns gnet.Close:
//     gnet removes its descriptor from epoll and closes it without
//     shutdown(2), so the socket lives on in the duplicate. Terminated and
//     plaintext HTTP connections are queued to Server.Listener(name), whose
//     Accept (on the L7 server's accept goroutine) adopts the descriptor
//     with os.NewFile and net.FileConn, wraps it in a Conn that first replays
//     the bytes already read, and, for TLS, in ListenerConfig.Terminate.
//     Pass-through SNIs and relay listeners go to a relay goroutine.
//  5. Relay: dial the pool's pick with a timeout, move to the next endpoint
//     on failure, write a PROXY v2 header and the replayed bytes, then
//     io.Copy both ways between *net.TCPConn, which the kernel does with
//     splice(2): nothing relayed passes through the Go heap, so a slow reader
//     holds back the writer through TCP flow control instead of growing
//     memory. EOF on one side half-closes the other (CloseWrite).
//
// # Why the hand-off, and what it costs
//
// gnet's loops are cheap per idle or trickling connection and keep the
// per-connection work before classification off goroutines, but they must
// never block, and gnet-to-gnet relaying has no read backpressure (measured
// here: 1.2 GiB RSS with four slow clients). So every connection leaves the
// loop once classified. Adopting the descriptor costs about 13 us of CPU
// (two dups, epoll registration, getsockname/getpeername; BenchmarkAdoptFD);
// end to end a new connection cost 7 to 23 us more server CPU than
// accept=go on the 2-core development VM (less with ReusePort, which spares
// the hop from gnet's accept reactor to a loop), and a keep-alive request
// costs nothing extra. Config.Accept = "go" serves the same listeners from
// net.Listen, so the difference stays measurable
// (go run ./l4/internal/handoffbench).
//
// # Nothing blocks in a gnet callback
//
// Callbacks never dial, never do TLS and never wait on a channel. Queueing
// to a full Listener channel spills the connection into a goroutine that
// waits for room (bounded by Config.HandoffQueue, counted in
// HandoffSpilled); past that bound the connection is refused
// (RejectBacklog). fasthttp's accept loop never waits on its workers, so a
// full channel means a momentarily busy accept goroutine, not a stuck one.
// OnTick runs on gnet's ticker goroutine, so it only posts sweeps to loops.
//
// Each listener has its own gnet engine: gnet identifies a connection's
// listener only by the configured address, which cannot tell two ":0"
// listeners apart, and separate engines keep a flood on one listener off
// the others' loops. gnet stops an engine for good when accept(2) fails with
// EMFILE; a supervisor restarts it on the same address.
//
// Relay idle timeouts read TCP_INFO (time since the last data segment sent
// or received, on both sockets) when a timer fires, so the splice loops need
// no per-chunk bookkeeping.
package l4
