package regtest

import (
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fault is one kind of injected failure.
type Fault string

// The faults a FaultProxy injects.
const (
	// TooManyRequests answers 429 with a Retry-After header.
	TooManyRequests Fault = "429"
	// Unavailable answers 503.
	Unavailable Fault = "503"
	// Reset closes the connection with a TCP RST before answering.
	Reset Fault = "reset"
	// Truncate forwards the request but cuts the response body off halfway
	// and drops the connection. Only responses with a body of 2 bytes or more
	// qualify; for others a Reset is injected instead.
	Truncate Fault = "truncate"
)

// AllFaults lists every Fault.
var AllFaults = []Fault{TooManyRequests, Unavailable, Reset, Truncate}

// Faults configures a FaultProxy. The zero value injects nothing.
type Faults struct {
	// Seed makes the sequence of decisions repeatable (for a given order of
	// requests; concurrent clients still interleave).
	Seed int64
	// Rate is the probability, 0 to 1, that a request gets a fault.
	Rate float64
	// MaxFaults bounds the faults injected over the proxy's life; 0 means
	// none at all.
	MaxFaults int
	// Kinds are the faults to choose from, uniformly; nil means AllFaults.
	Kinds []Fault
	// RetryAfter is the Retry-After of a 429, whole seconds; 0 means 1 s.
	RetryAfter time.Duration
	// Match, when set, limits faults to the requests it returns true for
	// (every request is still forwarded and recorded).
	Match func(*http.Request) bool
	// Transport reaches the upstream; nil means http.DefaultTransport. Use
	// [Registry.Transport] for a TLS registry.
	Transport http.RoundTripper
}

// Request is one request a FaultProxy saw.
type Request struct {
	Method string
	Path   string // URL path, without the query
	Status int    // status sent, or 0 for a Reset and a Truncate
	Fault  Fault  // "" when forwarded untouched
}

// FaultProxy is a reverse proxy that injects faults. It serves plain HTTP.
type FaultProxy struct {
	// Host is "127.0.0.1:PORT".
	Host string
	// URL is "http://Host".
	URL string

	faults Faults
	srv    *httptest.Server
	rp     *httputil.ReverseProxy

	mu       sync.Mutex
	rnd      *rand.Rand
	injected int
	requests []Request
}

// NewFaultProxy starts a proxy in front of upstream (a URL such as
// [Registry.URL]) and closes it in t.Cleanup.
func NewFaultProxy(t testing.TB, upstream string, f Faults) *FaultProxy {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatalf("regtest: upstream %q: %v", upstream, err)
	}
	if f.Kinds == nil {
		f.Kinds = AllFaults
	}
	if f.RetryAfter <= 0 {
		f.RetryAfter = time.Second
	}
	p := &FaultProxy{faults: f, rnd: rand.New(rand.NewPCG(uint64(f.Seed), 0x5eed))}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = u.Host
		},
		Transport: f.Transport,
		// A cut body is the point of the exercise, not news.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	p.srv = httptest.NewServer(p)
	t.Cleanup(p.srv.Close)
	p.URL = p.srv.URL
	p.Host = strings.TrimPrefix(p.srv.URL, "http://")
	return p
}

// ServeHTTP forwards r, or injects a fault.
func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fault := p.decide(r)
	rec := Request{Method: r.Method, Path: r.URL.Path, Fault: fault}
	if fault == Truncate && r.Method == http.MethodHead {
		fault, rec.Fault = Reset, Reset
	}
	switch fault {
	case TooManyRequests:
		w.Header().Set("Retry-After", strconv.Itoa(int(p.faults.RetryAfter/time.Second)))
		rec.Status = http.StatusTooManyRequests
		p.record(rec)
		http.Error(w, "regtest: injected 429", rec.Status)
		return
	case Unavailable:
		rec.Status = http.StatusServiceUnavailable
		p.record(rec)
		http.Error(w, "regtest: injected 503", rec.Status)
		return
	case Reset:
		p.record(rec)
		reset(w)
		return
	case Truncate:
		p.record(rec)
		p.rp.ServeHTTP(&cutWriter{ResponseWriter: w}, r)
		return
	}
	sw := &statusWriter{ResponseWriter: w}
	p.rp.ServeHTTP(sw, r)
	rec.Status = sw.status
	p.record(rec)
}

func (p *FaultProxy) decide(r *http.Request) Fault {
	if p.faults.Match != nil && !p.faults.Match(r) {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.injected >= p.faults.MaxFaults || p.rnd.Float64() >= p.faults.Rate {
		return ""
	}
	p.injected++
	return p.faults.Kinds[p.rnd.IntN(len(p.faults.Kinds))]
}

func (p *FaultProxy) record(r Request) {
	p.mu.Lock()
	p.requests = append(p.requests, r)
	p.mu.Unlock()
}

// Requests returns every request seen so far, in the order they finished.
func (p *FaultProxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.requests...)
}

// Injected counts the faults injected so far, by kind. A Truncate whose
// response turned out to have no body still counts as a Truncate.
func (p *FaultProxy) Injected() map[Fault]int {
	out := map[Fault]int{}
	for _, r := range p.Requests() {
		if r.Fault != "" {
			out[r.Fault]++
		}
	}
	return out
}

// reset hijacks the connection and closes it with SO_LINGER 0, which sends
// a TCP RST: the client sees "connection reset by peer".
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// cutWriter passes the headers and half the body on, flushes them, then
// aborts the connection, so the client sees a short body. A response without
// a Content-Length of at least 2 is reset instead.
type cutWriter struct {
	http.ResponseWriter
	left int64
}

func (c *cutWriter) WriteHeader(code int) {
	n, err := strconv.ParseInt(c.Header().Get("Content-Length"), 10, 64)
	if err != nil || n < 2 {
		reset(c.ResponseWriter)
		panic(http.ErrAbortHandler)
	}
	c.left = n / 2
	c.ResponseWriter.WriteHeader(code)
}

func (c *cutWriter) Write(b []byte) (int, error) {
	if int64(len(b)) >= c.left {
		_, _ = c.ResponseWriter.Write(b[:c.left])
		http.NewResponseController(c.ResponseWriter).Flush()
		panic(http.ErrAbortHandler)
	}
	c.left -= int64(len(b))
	return c.ResponseWriter.Write(b)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
