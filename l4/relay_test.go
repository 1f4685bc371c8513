package l4

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	streamChunk = 1 << 20
	streamSize  = 256 << 20
)

// stream is a deterministic 256 MiB byte stream: a random 1 MiB block whose
// first 8 bytes carry the chunk index, so every chunk differs and a
// reordering or a lost chunk changes the hash.
type stream struct {
	block []byte
}

func newStream(seed uint64) *stream {
	b := make([]byte, streamChunk)
	r := rand.NewChaCha8([32]byte{byte(seed)})
	r.Read(b)
	return &stream{block: b}
}

func (s *stream) chunk(i int) []byte {
	binary.LittleEndian.PutUint64(s.block, uint64(i))
	return s.block
}

// writeTo writes the stream to w and half-closes it.
func (s *stream) writeTo(w *net.TCPConn) error {
	for i := range streamSize / streamChunk {
		if _, err := w.Write(s.chunk(i)); err != nil {
			return err
		}
	}
	return w.CloseWrite()
}

func (s *stream) sum() [32]byte {
	h := sha256.New()
	for i := range streamSize / streamChunk {
		h.Write(s.chunk(i))
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// hashAll reads r to EOF; slow readers pause after every MiB, so the relay
// must hold back the fast writer instead of buffering for it.
func hashAll(r io.Reader, slow bool) ([32]byte, int64, error) {
	h := sha256.New()
	buf := make([]byte, 64<<10)
	var n, sincePause int64
	for {
		m, err := r.Read(buf)
		h.Write(buf[:m])
		n += int64(m)
		sincePause += int64(m)
		if slow && sincePause >= streamChunk {
			sincePause = 0
			time.Sleep(4 * time.Millisecond)
		}
		if err == io.EOF {
			var out [32]byte
			h.Sum(out[:0])
			return out, n, nil
		}
		if err != nil {
			return [32]byte{}, n, err
		}
	}
}

// rssBytes reads VmRSS from /proc/self/status.
func rssBytes(t testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			kb, err := strconv.ParseInt(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(v), []byte("kB")))), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

func TestRelay256MiBEachWay(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 1 GiB through loopback")
	}
	up, down := newStream(1), newStream(2)
	upSum, downSum := up.sum(), down.sum()
	for _, tc := range []struct {
		name string
		mode AcceptMode
		slow bool
	}{
		{"gnet", AcceptGnet, false},
		{"gnet-slow-reader", AcceptGnet, true},
		{"go-slow-reader", AcceptGo, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			type result struct {
				sum [32]byte
				n   int64
				err error
			}
			backendGot := make(chan result, 1)
			backend := tcpBackend(t, func(c net.Conn) {
				tcp := c.(*net.TCPConn)
				var wg sync.WaitGroup
				wg.Add(1)
				go func() {
					defer wg.Done()
					newStream(2).writeTo(tcp)
				}()
				sum, n, err := hashAll(tcp, false)
				backendGot <- result{sum, n, err}
				wg.Wait()
			})
			pools := fakePools{"p": {eps: []fakeEndpoint{fakeEndpoint(backend)}}}
			s := startServer(t, Config{Accept: tc.mode, Pools: pools, Listeners: []ListenerConfig{
				{Name: "l4", Address: "127.0.0.1:0", Kind: KindRelay, Pool: "p"},
			}})

			runtime.GC()
			base := rssBytes(t)
			var peak atomic.Int64
			stopSampling := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				for {
					if r := rssBytes(t); r > peak.Load() {
						peak.Store(r)
					}
					select {
					case <-stopSampling:
						return
					case <-time.After(10 * time.Millisecond):
					}
				}
			}()

			c, err := net.Dial("tcp", s.Addr("l4").String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tcp := c.(*net.TCPConn)
			writeErr := make(chan error, 1)
			go func() { writeErr <- up.writeTo(tcp) }()
			sum, n, err := hashAll(bufio.NewReaderSize(tcp, 4096), tc.slow)
			if err != nil {
				t.Fatalf("client read after %d bytes: %v", n, err)
			}
			if err := <-writeErr; err != nil {
				t.Fatalf("client write: %v", err)
			}
			got := <-backendGot
			close(stopSampling)
			<-sampled

			if n != streamSize || sum != downSum {
				t.Fatalf("client received %d bytes, hash match %v; want %d identical bytes", n, sum == downSum, streamSize)
			}
			if got.err != nil || got.n != streamSize || got.sum != upSum {
				t.Fatalf("backend received %d bytes (err %v), hash match %v; want %d identical bytes", got.n, got.err, got.sum == upSum, streamSize)
			}
			growth := peak.Load() - base
			t.Logf("RSS %d MiB before, peak growth %d MiB while relaying 512 MiB", base>>20, growth>>20)
			// The relay splices socket to socket: nothing it moves passes
			// through the Go heap. The bound leaves room for the test's own
			// buffers and the runtime, and is far below what buffering even
			// a fraction of the 256 MiB a slow reader leaves behind would take.
			if growth > 64<<20 {
				t.Fatalf("RSS grew by %d MiB while relaying, want under 64 MiB", growth>>20)
			}
			c.Close()
			waitFor(t, "relay finished", func() bool { return stats(s, "l4").Relays == 0 })
			st := stats(s, "l4")
			if st.RelayBytesIn != streamSize || st.RelayBytesOut != streamSize {
				t.Fatalf("relay byte counters in/out %d/%d, want %d each", st.RelayBytesIn, st.RelayBytesOut, streamSize)
			}
		})
	}
}
