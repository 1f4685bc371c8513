// Package tlsterm terminates TLS for edge's listeners.
//
// l4 accepts a connection, peeks its ClientHello and hands over a net.Conn
// that replays the peeked bytes; Terminator.Server wraps it in a *tls.Conn
// whose handshake runs lazily on the first Read, in the L7 engine's
// per-connection goroutine and under its deadlines. Per handshake the
// Terminator picks a certificate by SNI (exact name, then a one-label wildcard,
// then the first certificate), offers ALPN http/1.1 (RFC 7301), accepts TLS
// 1.2 and 1.3 by default (RFC 8446), keeps Go's default key exchange groups
// (X25519MLKEM768, the hybrid post-quantum group, first), optionally requires
// client certificates (mTLS), and issues session tickets for resumption.
//
// Certificates, client CAs and ticket keys live in an immutable snapshot
// swapped atomically: Reload (on SIGHUP) and Watch (polling the files) serve
// new files to new handshakes without touching established connections, and
// keep the old files when the new ones do not load.
//
// # Session tickets
//
// Session tickets (RFC 8446 section 4.6.1, RFC 5077) are encrypted with keys
// the client never sees. By default a Terminator generates them: a fresh key
// encrypts new tickets every TicketKeyRotation and each key still decrypts
// until TicketKeyLifetime after its creation, so tickets survive rotation for
// a window while a stolen key exposes only a bounded span of sessions.
// Generated keys are per process: another replica cannot read them, so a
// client moving between replicas pays a full handshake.
//
// Replicas resume each other's sessions when they share a session ticket keys
// file (Config.SessionTicketKeysFile). Its format:
//
//	# edge session ticket keys: the first key encrypts, every key decrypts.
//	# One key per line, 32 random bytes in standard base64: openssl rand -base64 32
//	# (these two are examples: generate your own)
//	7R0SObKILUnyvMn0R01HnBfb9gjLaKUBE/9xvp8mHzY=
//	4DpJe848CdisNbvphk2CfbGr1BC3dtQozQt7eyZ8/ng=
//
// Blank lines and lines starting with '#' are ignored; surrounding spaces are
// trimmed; at most 32 keys. Keep the file readable by edge only: anyone with a
// key can decrypt the sessions whose tickets it encrypted (TLS 1.2) or
// impersonate their clients' resumption (TLS 1.3).
//
// Rotate the file's keys without breaking resumption across replicas in three
// steps, each reaching every replica (Reload or Watch) before the next:
//  1. add the new key as the second line (it decrypts, nothing uses it yet);
//  2. move it to the first line (it encrypts; the old key still decrypts);
//  3. after the longest ticket lifetime you want to honour, delete the old key.
//
// # Metrics
//
// Config.OnHandshake sees every handshake's tls.ConnectionState; VersionName
// and GroupName turn its Version and CurveID into the stable lowercase labels
// of edge_tls_handshakes_total{listener,version,group}.
package tlsterm
