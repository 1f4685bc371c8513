package tlsterm

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func TestParseTicketKeys(t *testing.T) {
	const k1, k2 = "7R0SObKILUnyvMn0R01HnBfb9gjLaKUBE/9xvp8mHzY=", "4DpJe848CdisNbvphk2CfbGr1BC3dtQozQt7eyZ8/ng="
	tests := []struct {
		name     string
		in       string
		wantKeys []string
		wantLine int
		wantErr  string
	}{
		{name: "one", in: k1 + "\n", wantKeys: []string{k1}},
		{name: "no final newline", in: k1, wantKeys: []string{k1}},
		{name: "comments, blanks, CRLF, spaces", in: "# keys\r\n\r\n  " + k1 + " \r\n\t" + k2 + "\r\n# end", wantKeys: []string{k1, k2}},
		{name: "empty", in: "", wantErr: "no keys"},
		{name: "only comments", in: "# nothing\n\n", wantErr: "no keys"},
		{name: "too short", in: k1 + "\nAAAA\n", wantLine: 2, wantErr: "got 4 characters"},
		{name: "unpadded", in: strings.TrimSuffix(k1, "="), wantLine: 1, wantErr: "got 43 characters"},
		{name: "not base64", in: "#\n" + strings.Repeat("!", 44), wantLine: 2, wantErr: "not valid standard base64"},
		{name: "url alphabet", in: strings.NewReplacer("/", "_", "+", "-").Replace(k1), wantLine: 1, wantErr: "not valid standard base64"},
		{name: "too many", in: strings.Repeat(k1+"\n", maxTicketKeys+1), wantLine: maxTicketKeys + 1, wantErr: "more than 32 keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, line, err := parseTicketKeys([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || line != tt.wantLine {
					t.Fatalf("got line %d error %v, want line %d error containing %q", line, err, tt.wantLine, tt.wantErr)
				}
				if strings.Contains(err.Error(), k1[:8]) {
					t.Errorf("error %q quotes key material", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != len(tt.wantKeys) {
				t.Fatalf("got %d keys, want %d", len(keys), len(tt.wantKeys))
			}
			for i, k := range keys {
				if got := base64.StdEncoding.EncodeToString(k[:]); got != tt.wantKeys[i] {
					t.Errorf("key %d = %s, want %s", i, got, tt.wantKeys[i])
				}
			}
		})
	}
}

// TestDocTicketKeysExample keeps the package documentation's example valid.
func TestDocTicketKeysExample(t *testing.T) {
	example := "# edge session ticket keys: the first key encrypts, every key decrypts.\n" +
		"# One key per line, 32 random bytes in standard base64: openssl rand -base64 32\n" +
		"7R0SObKILUnyvMn0R01HnBfb9gjLaKUBE/9xvp8mHzY=\n4DpJe848CdisNbvphk2CfbGr1BC3dtQozQt7eyZ8/ng=\n"
	if keys, _, err := parseTicketKeys([]byte(example)); err != nil || len(keys) != 2 {
		t.Fatalf("doc example: %d keys, %v", len(keys), err)
	}
}

// TestRotateTicketKeys walks a fixed timeline with rotation every hour and a
// three-hour lifetime.
func TestRotateTicketKeys(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	key := func(b byte) [32]byte { return [32]byte{b} }
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	steps := []struct {
		now      time.Duration
		wantKeys []byte        // key ids, newest first
		wantNext time.Duration // from t0
	}{
		{0, []byte{1}, time.Hour},
		{30 * time.Minute, []byte{1}, time.Hour}, // nothing due
		{time.Hour, []byte{3, 1}, 2 * time.Hour},
		{2*time.Hour + 30*time.Minute, []byte{4, 3, 1}, 3 * time.Hour}, // next: key 1 expires at 3h
		{3 * time.Hour, []byte{4, 3}, 3*time.Hour + 30*time.Minute},
		{3*time.Hour + 30*time.Minute, []byte{6, 4, 3}, 4 * time.Hour}, // key 3 expires at 4h
		{20 * time.Hour, []byte{7}, 21 * time.Hour},                    // long idle: one fresh key
	}
	var keys []ticketKey
	for i, s := range steps {
		var next time.Time
		keys, next = rotateTicketKeys(keys, at(s.now), time.Hour, 3*time.Hour, key(byte(i+1)))
		var got []byte
		for _, k := range keys {
			got = append(got, k.key[0])
		}
		if !bytes.Equal(got, s.wantKeys) || !next.Equal(at(s.wantNext)) {
			t.Errorf("step %d at +%v: keys %v next +%v, want keys %v next +%v",
				i, s.now, got, next.Sub(t0), s.wantKeys, s.wantNext)
		}
	}
}

// FuzzParseTicketKeys: any input either fails with a line inside the input or
// yields 1..32 keys that parse back identically from their canonical form.
func FuzzParseTicketKeys(f *testing.F) {
	f.Add([]byte("7R0SObKILUnyvMn0R01HnBfb9gjLaKUBE/9xvp8mHzY=\n"))
	f.Add([]byte("# c\r\n\r\n 7R0SObKILUnyvMn0R01HnBfb9gjLaKUBE/9xvp8mHzY= \n4DpJe848CdisNbvphk2CfbGr1BC3dtQozQt7eyZ8/ng="))
	f.Add([]byte(""))
	f.Add([]byte("AAAA\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, line, err := parseTicketKeys(data)
		if err != nil {
			if keys != nil || line < 0 || line > bytes.Count(data, []byte("\n"))+1 {
				t.Fatalf("error %v with %d keys at line %d", err, len(keys), line)
			}
			return
		}
		if len(keys) == 0 || len(keys) > maxTicketKeys {
			t.Fatalf("%d keys", len(keys))
		}
		var canon []byte
		for _, k := range keys {
			canon = base64.StdEncoding.AppendEncode(canon, k[:])
			canon = append(canon, '\n')
		}
		again, _, err := parseTicketKeys(canon)
		if err != nil || len(again) != len(keys) {
			t.Fatalf("canonical form did not parse back: %v", err)
		}
		for i := range keys {
			if again[i] != keys[i] {
				t.Fatalf("key %d changed through the canonical form", i)
			}
		}
	})
}
