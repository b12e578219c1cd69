package registry

import (
	"bytes"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) Add(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
}

// memRegistry is go-containerregistry's in-process registry on a loopback
// httptest server, counting the manifest HEADs detour sends it and able to hold
// them until released or to drop every connection (switched off).
type memRegistry struct {
	srv   *httptest.Server
	Host  string
	heads atomic.Int64
	reqs  atomic.Int64
	off   atomic.Bool

	mu      sync.Mutex
	hold    chan struct{} // HEADs wait for it to close, when not nil
	handler http.Handler
}

func newMemRegistry(t testing.TB) *memRegistry {
	t.Helper()
	m := &memRegistry{handler: ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0)))}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	m.Host = strings.TrimPrefix(m.srv.URL, "http://")
	t.Cleanup(m.srv.Close)
	return m
}

func (m *memRegistry) serve(w http.ResponseWriter, r *http.Request) {
	m.reqs.Add(1)
	if m.off.Load() {
		dropConnection(w)
		return
	}
	// Only detour's own HEADs count; pushes in the test do HEADs too.
	if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/manifests/") && r.UserAgent() == "detour" {
		m.heads.Add(1)
		m.mu.Lock()
		hold := m.hold
		m.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
	}
	m.handler.ServeHTTP(w, r)
}

// holdHeads makes manifest HEADs wait; the returned func releases them.
func (m *memRegistry) holdHeads() func() {
	ch := make(chan struct{})
	m.mu.Lock()
	m.hold = ch
	m.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

// dropConnection closes the client's connection without an answer.
func dropConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("no hijacker")
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		conn.Close()
	}
}

// push writes a small random image to host/repo:tag and returns its digest.
func push(t testing.TB, host, repo string, opts ...remote.Option) v1.Hash {
	t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// deadAddress returns a loopback host:port with nothing listening.
func deadAddress(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// dropListener accepts connections and closes them at once, counting them:
// a registry host that fails every request without an HTTP answer.
type dropListener struct {
	l       net.Listener
	Host    string
	accepts atomic.Int64
	done    chan struct{}
}

func newDropListener(t testing.TB) *dropListener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dropListener{l: l, Host: l.Addr().String(), done: make(chan struct{})}
	go func() {
		defer close(d.done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			d.accepts.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-d.done })
	return d
}

// newTestClient makes a Client closed at cleanup, with an empty keychain
// unless one is given.
func newTestClient(t testing.TB, o ClientOptions) *Client {
	t.Helper()
	if o.Keychain == nil {
		o.Keychain = staticKeychain{}
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second // loaded 2-core machine: no spurious timeouts
	}
	c := NewClient(o)
	t.Cleanup(c.Close)
	return c
}

// newTestChecker makes a Checker closed at cleanup.
// newTestMetrics makes the Prometheus metrics on a registry of their own,
// which metricValue reads.
func newTestMetrics(t testing.TB) (*Prometheus, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewPrometheus(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

func newTestChecker(t testing.TB, client *Client, o CheckerOptions) *Checker {
	t.Helper()
	c := NewChecker(client, o)
	t.Cleanup(c.Close)
	return c
}

// waitForWaiters waits until n goroutines are blocked in a select inside
// fn (e.g. "(*Checker).Has("): proof that they are all in flight at once.
func waitForWaiters(t testing.TB, fn string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		buf := make([]byte, 1<<22)
		buf = buf[:runtime.Stack(buf, true)]
		got := 0
		for _, g := range bytes.Split(buf, []byte("\n\n")) {
			header, _, _ := bytes.Cut(g, []byte("\n"))
			if bytes.Contains(header, []byte("[select")) && bytes.Contains(g, []byte(fn)) {
				got++
			}
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d goroutines are waiting in %s", got, n, fn)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// eventually polls cond until it holds, failing after a generous deadline.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// metricValue reads one sample of a gathered counter or gauge (0 if absent).
func metricValue(t testing.TB, reg *prometheus.Registry, metric string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	return 0
}

// rawHead sends a HEAD with exactly the given Accept values.
func rawHead(t testing.TB, client *http.Client, url string, accept ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodHead, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range accept {
		req.Header.Add("Accept", a)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}
