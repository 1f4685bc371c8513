package tlsterm

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// maxTicketKeys bounds the keys one session ticket keys file may hold. Go tries
// every key (an HMAC-SHA256 each) on a ticket it cannot decrypt, so a long list
// would make bogus tickets expensive.
const maxTicketKeys = 32

// ticketKey is one session ticket encryption key. Go derives the AES and HMAC
// keys from the 32 bytes (tls.Config.SetSessionTicketKeys).
type ticketKey struct {
	key     [32]byte
	created time.Time // when a generated key was made; zero for keys from a file
}

// parseTicketKeys parses the session ticket keys file format described in the
// package documentation. On error it returns the 1-based line at fault (0 when
// the problem is the file as a whole). Errors never quote key material.
func parseTicketKeys(data []byte) (keys [][32]byte, line int, err error) {
	for n := 1; len(data) > 0; n++ {
		var l []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			l, data = data, nil
		}
		l = bytes.TrimSpace(l)
		if len(l) == 0 || l[0] == '#' {
			continue
		}
		var k [32]byte
		// A 32-byte key is exactly 44 characters of padded standard base64.
		if len(l) != base64.StdEncoding.EncodedLen(len(k)) {
			return nil, n, fmt.Errorf("want 44 characters of standard base64 (32 bytes, as from `openssl rand -base64 32`), got %d characters", len(l))
		}
		// Decode may write DecodedLen (33) bytes: 44 characters without padding
		// hold 33 bytes, which must be refused rather than overflow k.
		var buf [33]byte
		m, err := base64.StdEncoding.Decode(buf[:], l)
		if err != nil || m != len(k) {
			return nil, n, errors.New("key is not valid standard base64 of 32 bytes")
		}
		copy(k[:], buf[:m])
		if len(keys) == maxTicketKeys {
			return nil, n, fmt.Errorf("more than %d keys", maxTicketKeys)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, 0, errors.New("no keys (want one base64 key per line, the first encrypts)")
	}
	return keys, 0, nil
}

// rotateTicketKeys advances a generated key ring to now: when the newest key
// has encrypted for every, newKey becomes the encryption key; keys older than
// lifetime are dropped (the newest is always kept). keys are newest first and
// are not modified. It returns the new ring and the time it next needs
// rotating or pruning. Its only clock is now, so tests walk fixed timelines.
func rotateTicketKeys(keys []ticketKey, now time.Time, every, lifetime time.Duration, newKey [32]byte) ([]ticketKey, time.Time) {
	out := make([]ticketKey, 0, len(keys)+1)
	if len(keys) == 0 || now.Sub(keys[0].created) >= every {
		out = append(out, ticketKey{key: newKey, created: now})
	}
	for _, k := range keys {
		if len(out) > 0 && now.Sub(k.created) >= lifetime {
			continue
		}
		out = append(out, k)
	}
	next := out[0].created.Add(every)
	if oldest := out[len(out)-1]; len(out) > 1 {
		if exp := oldest.created.Add(lifetime); exp.Before(next) {
			next = exp
		}
	}
	return out, next
}
