package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/detourhq/detour/internal/admission"
	"github.com/detourhq/detour/internal/config"
)

// gateChecker holds every availability check until released, and says when
// the first one arrives: a request that stays in flight as long as the test
// wants.
type gateChecker struct {
	arrived chan struct{}
	once    sync.Once
	release chan struct{}
}

func (g *gateChecker) Has(ctx context.Context, image string) (bool, error) {
	g.once.Do(func() { close(g.arrived) })
	select {
	case <-g.release:
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// running is a Serve started by startServe.
type running struct {
	webhook, probe string // addresses
	client         *http.Client
	cancel         context.CancelFunc
	done           chan error
}

// startServe runs Serve on loopback ports with a self-signed certificate
// and the store newStore makes, until the test ends.
func startServe(t *testing.T, newStore func(*Metrics) *Store) *running {
	t.Helper()
	cert, certPEM, err := SelfSigned([]string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	certs := NewStaticCert(cert)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, certs)
	store := newStore(m)

	ctx, cancel := context.WithCancel(context.Background())
	r := &running{
		cancel: cancel,
		done:   make(chan error, 1),
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}},
	}
	listening := make(chan struct{})
	go func() {
		r.done <- Serve(ctx, Options{
			Listen: "127.0.0.1:0", ProbeListen: "127.0.0.1:0",
			Certs: certs, Store: store, Metrics: m, Gatherer: reg,
			Listening: func(w, p net.Addr) {
				r.webhook, r.probe = w.String(), p.String()
				close(listening)
			},
		})
	}()
	select {
	case <-listening:
	case err := <-r.done:
		t.Fatalf("Serve: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		<-r.done
		r.client.CloseIdleConnections()
	})
	return r
}

func (r *running) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + r.probe + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (r *running) mutate(body []byte) (*http.Response, []byte, error) {
	resp, err := r.client.Post("https://"+r.webhook+"/mutate", "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestServe(t *testing.T) {
	t.Parallel()
	r := startServe(t, func(m *Metrics) *Store { return defaultStore(t, m) })
	if code, body := r.get(t, "/healthz"); code != 200 {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := r.get(t, "/readyz"); code != 200 {
		t.Errorf("/readyz: %d %q", code, body)
	}
	resp, body, err := r.mutate(podReview(t))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("status %d TLS %v: %s", resp.StatusCode, resp.TLS, body)
	}
	var rv struct {
		Response struct{ Patch []byte }
	}
	if err := json.Unmarshal(body, &rv); err != nil || !strings.Contains(string(rv.Response.Patch), "docker.m.daocloud.io/library/nginx:1.25") {
		t.Errorf("answer %s (%v): want a patch to the daocloud mirror", body, err)
	}

	// TLS 1.1 is refused.
	old := &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11} //nolint:gosec // testing the server's floor
	if conn, err := tls.Dial("tcp", r.webhook, old); err == nil {
		conn.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}

	_, metrics := r.get(t, "/metrics")
	for _, want := range []string{
		`detour_admission_requests_total{operation="CREATE",result="patched"} 1`,
		`detour_admission_duration_seconds_count 1`,
		`detour_images_rewritten_total{rule="docker.io"} 1`,
		`detour_config_generation 1`,
		`detour_config_reloads_total{result="success"} 1`,
		`detour_certificate_expiry_timestamp_seconds `,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestServeIsNotReadyWithoutAConfig(t *testing.T) {
	t.Parallel()
	store := NewStore(StoreOptions{})
	r := startServe(t, func(*Metrics) *Store { return store })
	if code, body := r.get(t, "/readyz"); code != 503 || !strings.Contains(body, "no config loaded yet") {
		t.Errorf("/readyz without a config: %d %q, want 503 saying so", code, body)
	}
	resp, body, err := r.mutate(podReview(t))
	if err != nil || resp.StatusCode != 503 {
		t.Errorf("/mutate without a config: %v %v %s, want 503", resp, err, body)
	}
	if err := store.ApplyConfig(config.Default()); err != nil {
		t.Fatal(err)
	}
	if code, body := r.get(t, "/readyz"); code != 200 {
		t.Errorf("/readyz with a config: %d %q", code, body)
	}
}

func TestServeShutsDownGracefully(t *testing.T) {
	t.Parallel()
	gate := &gateChecker{arrived: make(chan struct{}), release: make(chan struct{})}
	store := NewStore(StoreOptions{NewChecker: func(*config.Config) admission.Checker { return gate }})
	if err := store.Apply([]byte("check:\n  enabled: true\n  budget: 1m\n"), "config.yaml"); err != nil {
		t.Fatal(err)
	}
	r := startServe(t, func(*Metrics) *Store { return store })

	type answer struct {
		code int
		body []byte
		err  error
	}
	inFlight := make(chan answer, 1)
	go func() {
		resp, body, err := r.mutate(podReview(t))
		a := answer{body: body, err: err}
		if resp != nil {
			a.code = resp.StatusCode
		}
		inFlight <- a
	}()
	<-gate.arrived // the request is being answered

	r.cancel() // SIGTERM
	eventually(t, "reporting not ready", func() bool {
		code, body := r.get(t, "/readyz")
		return code == 503 && strings.Contains(body, "shutting down")
	})
	eventually(t, "refusing new connections", func() bool {
		conn, err := net.Dial("tcp", r.webhook)
		if err == nil {
			conn.Close()
		}
		return err != nil
	})
	select {
	case err := <-r.done:
		t.Fatalf("Serve returned (%v) with a request in flight", err)
	default:
	}

	close(gate.release)
	a := <-inFlight
	if a.err != nil || a.code != 200 || !bytes.Contains(a.body, []byte(`"patch"`)) {
		t.Errorf("the request in flight got %d %s (%v), want its patched answer", a.code, a.body, a.err)
	}
	if err := <-r.done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	r.done <- nil // for the cleanup
}

func TestServeFailsOnATakenPort(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cert, _, err := SelfSigned([]string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	err = Serve(context.Background(), Options{
		Listen: ln.Addr().String(), ProbeListen: "127.0.0.1:0",
		Certs: NewStaticCert(cert), Store: defaultStore(t, nil),
	})
	if err == nil || !strings.Contains(err.Error(), "listening on "+ln.Addr().String()) {
		t.Errorf("Serve on a taken port: %v", err)
	}
}
