package registry

// Integration tests against the real CNCF distribution server (Debian
// docker-registry), whose manifest quirks the in-process registry hides.

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/detourhq/detour/internal/config"
	"github.com/detourhq/detour/internal/regtest"
)

func TestRealRegistryOCIIndexNeedsTheOCIIndexAcceptType(t *testing.T) {
	t.Parallel()
	reg := regtest.Start(t, regtest.Options{})
	idx, err := random.Index(64, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if mt, _ := idx.MediaType(); mt != types.OCIImageIndex {
		t.Fatalf("test index has media type %s, want an OCI index", mt)
	}
	ref, err := name.ParseReference(reg.Host+"/oci/index:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	raw := &http.Client{Timeout: 10 * time.Second}
	for _, r := range []string{"v1", d.String()} {
		u := reg.URL + "/v2/oci/index/manifests/" + r
		// The quirk: without the OCI index type, distribution says 404.
		if resp := rawHead(t, raw, u, MediaTypeDockerManifest, MediaTypeDockerManifestList, MediaTypeOCIManifest); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("HEAD %s without the OCI index type: %d; the quirk this test guards against is gone?", u, resp.StatusCode)
		}
		if resp := rawHead(t, raw, u, MediaTypeDockerManifest, MediaTypeDockerManifestList, MediaTypeOCIManifest, MediaTypeOCIIndex); resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != d.String() {
			t.Fatalf("HEAD %s with all four types: %d %s", u, resp.StatusCode, resp.Header.Get("Docker-Content-Digest"))
		}
	}
	c := newTestChecker(t, newTestClient(t, ClientOptions{}), CheckerOptions{})
	for _, img := range []string{reg.Host + "/oci/index:v1", reg.Host + "/oci/index@" + d.String(), reg.Host + "/oci/index:v1@" + d.String()} {
		if has, err := c.Has(context.Background(), img); !has || err != nil {
			t.Errorf("Has(%s) = %v, %v; want true", img, has, err)
		}
	}
}

func TestRealRegistryDockerManifestListByDigest(t *testing.T) {
	t.Parallel()
	reg := regtest.Start(t, regtest.Options{})
	var idx v1.ImageIndex = mutate.IndexMediaType(empty.Index, types.DockerManifestList)
	var children []v1.Hash
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		dg, _ := img.Digest()
		children = append(children, dg)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			MediaType: types.DockerManifestSchema2, Platform: &v1.Platform{OS: "linux", Architecture: arch},
		}})
	}
	ref, _ := name.ParseReference(reg.Host+"/multi/arch:1", name.Insecure)
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	d, _ := idx.Digest()
	// The quirk: asked as a single image, the list answers a child's digest.
	resp := rawHead(t, &http.Client{Timeout: 10 * time.Second}, reg.URL+"/v2/multi/arch/manifests/1", MediaTypeDockerManifest)
	if got := resp.Header.Get("Docker-Content-Digest"); resp.StatusCode != http.StatusOK || got != children[0].String() {
		t.Fatalf("HEAD of the list with a single-image Accept: %d %s; want the amd64 child %s (the quirk this test guards against is gone?)", resp.StatusCode, got, children[0])
	}
	c := newTestChecker(t, newTestClient(t, ClientOptions{}), CheckerOptions{})
	for img, want := range map[string]bool{
		reg.Host + "/multi/arch:1":                                 true,
		reg.Host + "/multi/arch@" + d.String():                     true,
		reg.Host + "/multi/arch:1@" + d.String():                   true,
		reg.Host + "/multi/arch@" + children[1].String():           true, // a child, by digest
		reg.Host + "/multi/arch@sha256:" + strings.Repeat("0", 64): false,
	} {
		if has, err := c.Has(context.Background(), img); has != want || err != nil {
			t.Errorf("Has(%s) = %v, %v; want %v", img, has, err, want)
		}
	}
}

func TestRealRegistriesChainOfDownLacksHasChoosesTheThird(t *testing.T) {
	t.Parallel()
	lacks := regtest.Start(t, regtest.Options{})
	has := regtest.Start(t, regtest.Options{})
	push(t, has.Host, "library/app:1")
	dead := deadAddress(t)
	cfg, err := config.ParseBytes([]byte("presets: []\nmirrors:\n  - from: docker.io\n    to: [" + dead + ", " + lacks.Host + ", " + has.Host + "]\n"))
	if err != nil {
		t.Fatal(err)
	}
	set, err := cfg.Compile()
	if err != nil {
		t.Fatal(err)
	}
	chain := set.Rewrite("app:1").Chain()
	if len(chain) != 3 || chain[2] != has.Host+"/library/app:1" {
		t.Fatalf("chain %v", chain)
	}
	client := newTestClient(t, ClientOptions{})
	checker := newTestChecker(t, client, CheckerOptions{})
	for _, a := range []Availability{client, checker, checker /* warm */} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		i, err := FirstAvailable(ctx, a, chain)
		cancel()
		if i != 2 || err != nil {
			t.Errorf("FirstAvailable(%T) = %d, %v; want 2", a, i, err)
		}
	}
}

// delayingProxy is a reverse proxy to a registry that sleeps before
// forwarding; it counts the requests it has answered.
type delayingProxy struct {
	srv      *httptest.Server
	Host     string
	answered atomic.Int64
	release  chan struct{}
	once     sync.Once
}

func newDelayingProxy(t *testing.T, upstream string, delay time.Duration) *delayingProxy {
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	p := &delayingProxy{release: make(chan struct{})}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(delay):
		case <-p.release: // the test is done with the delay
		case <-r.Context().Done():
			return
		}
		rp.ServeHTTP(w, r)
		p.answered.Add(1)
	}))
	p.Host = strings.TrimPrefix(p.srv.URL, "http://")
	t.Cleanup(func() { p.Release(); p.srv.Close() })
	return p
}

func (p *delayingProxy) Release() { p.once.Do(func() { close(p.release) }) }

func TestRealRegistryBehindASlowProxyCannotPushACallPastItsDeadline(t *testing.T) {
	t.Parallel()
	reg := regtest.Start(t, regtest.Options{})
	push(t, reg.Host, "app:1")
	slow := newDelayingProxy(t, reg.URL, time.Minute)
	// A generous per-request timeout: only the caller's deadline can end it.
	c := newTestChecker(t, newTestClient(t, ClientOptions{Timeout: 2 * time.Minute}), CheckerOptions{})

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	has, err := c.Has(ctx, slow.Host+"/app:1")
	if has || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Has through the slow proxy = %v, %v; want false, context.DeadlineExceeded", has, err)
	}
	if n := slow.answered.Load(); n != 0 {
		t.Fatalf("the proxy answered %d requests before Has returned; the test proves nothing", n)
	}

	// The same budget over a chain whose first mirror is slow: the choice is
	// not known by the deadline, so the caller keeps the original image.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	i, err := FirstAvailable(ctx2, c, []string{slow.Host + "/app:1", reg.Host + "/app:1"})
	if i != -1 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("FirstAvailable = %d, %v; want -1, context.DeadlineExceeded", i, err)
	}
	if n := slow.answered.Load(); n != 0 {
		t.Fatalf("the proxy answered %d requests before FirstAvailable returned", n)
	}

	// The detached check goes on and fills the cache for the next admission.
	slow.Release()
	eventually(t, "the slow mirror's answer reaches the cache", func() bool {
		has, ok := c.Cached(slow.Host + "/app:1")
		return ok && has
	})
}

// switchProxy forwards to a registry while on and drops every connection
// while off.
type switchProxy struct {
	Host string
	on   atomic.Bool
}

func newSwitchProxy(t *testing.T, upstream string) *switchProxy {
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	p := &switchProxy{}
	p.on.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.on.Load() {
			dropConnection(w)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	p.Host = strings.TrimPrefix(srv.URL, "http://")
	t.Cleanup(srv.Close)
	return p
}

// syncBuffer is a bytes.Buffer safe for a logger used by goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRealRegistryMarkedDownRecoversThroughTheBackgroundProbe(t *testing.T) {
	t.Parallel()
	reg := regtest.Start(t, regtest.Options{})
	push(t, reg.Host, "app:1")
	mirror := newSwitchProxy(t, reg.URL)
	m, preg := newTestMetrics(t)
	var logs syncBuffer
	c := newTestChecker(t, newTestClient(t, ClientOptions{}), CheckerOptions{
		FailuresBeforeDown: 2,
		CoolDown:           time.Hour, // no check retries it: only the probe can bring it back
		ProbeInterval:      20 * time.Millisecond,
		Metrics:            m,
		Logger:             slog.New(slog.NewTextHandler(&logs, nil)),
	})
	ctx := context.Background()
	img := mirror.Host + "/app:1"
	if has, err := c.Has(ctx, img); !has || err != nil {
		t.Fatalf("Has = %v, %v", has, err)
	}
	up := func() float64 {
		return metricValue(t, preg, "detour_mirror_up", map[string]string{"mirror": mirror.Host})
	}

	mirror.on.Store(false)
	for _, tag := range []string{"x", "y"} {
		if _, err := c.Has(ctx, mirror.Host+"/app:"+tag); err == nil || errors.Is(err, ErrMarkedDown) {
			t.Fatalf("Has(app:%s) with the mirror off: %v; want a connection error", tag, err)
		}
	}
	if has, err := c.Has(ctx, img); has || !errors.Is(err, ErrMarkedDown) {
		t.Fatalf("Has = %v, %v; want false, ErrMarkedDown", has, err)
	}
	if up() != 0 {
		t.Fatalf("detour_mirror_up = %v, want 0", up())
	}

	mirror.on.Store(true)
	eventually(t, "the probe brings the mirror back", func() bool {
		has, err := c.Has(ctx, img)
		return has && err == nil
	})
	if up() != 1 {
		t.Errorf("detour_mirror_up = %v after recovery, want 1", up())
	}
	for _, want := range []string{`msg="registry marked down" registry=` + mirror.Host, `msg="registry is back" registry=` + mirror.Host} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// Not parallel: it sets DOCKER_CONFIG for the real docker-config keychain.
func TestRealRegistryTLSAndBasicAuthFromDockerConfig(t *testing.T) {
	reg := regtest.Start(t, regtest.Options{TLS: true, User: "detour", Password: "pw-7781"})
	push(t, reg.Host, "team/app:1",
		remote.WithAuth(&authn.Basic{Username: reg.User, Password: reg.Password}),
		remote.WithTransport(reg.Transport()))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(reg.CAPEM)
	ctx := context.Background()
	client := func() *Client { // the default keychain: DOCKER_CONFIG
		c := NewClient(ClientOptions{RootCAs: pool, Timeout: 10 * time.Second})
		t.Cleanup(c.Close)
		return c
	}

	t.Setenv("DOCKER_CONFIG", regtest.DockerConfig(t, reg))
	c := client()
	if has, err := c.Has(ctx, reg.Host+"/team/app:1"); !has || err != nil {
		t.Fatalf("Has with the docker config's credentials = %v, %v; want true", has, err)
	}
	if has, err := c.Has(ctx, reg.Host+"/team/app:2"); has || err != nil {
		t.Fatalf("Has(missing tag) = %v, %v; want false, nil", has, err)
	}
	if p := c.Ping(ctx, reg.Host); !p.Healthy() || p.Auth != "basic" || p.Login != "accepted" || !strings.HasPrefix(p.URL, "https://") || p.Note != "" {
		t.Errorf("Ping = %+v; want healthy over https, basic, accepted, no note", p)
	}

	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no config.json: anonymous
	c = client()
	if has, err := c.Has(ctx, reg.Host+"/team/app:1"); has || !errors.Is(err, ErrUnauthorized) {
		t.Errorf("Has without credentials = %v, %v; want false, ErrUnauthorized", has, err)
	}
	if p := c.Ping(ctx, reg.Host); p.Auth != "basic" || p.Login != "no credentials" || !strings.Contains(p.Note, "no credentials") {
		t.Errorf("Ping without credentials = %+v", p)
	}

	t.Setenv("DOCKER_CONFIG", dockerConfigWith(t, reg.Host, reg.User, "wrong"))
	c = client()
	if has, err := c.Has(ctx, reg.Host+"/team/app:1"); has || !errors.Is(err, ErrUnauthorized) {
		t.Errorf("Has with a wrong password = %v, %v; want false, ErrUnauthorized", has, err)
	}
	if p := c.Ping(ctx, reg.Host); p.Login != "rejected" {
		t.Errorf("Ping with a wrong password = %+v; want Login rejected", p)
	}

	untrusting := newTestClient(t, ClientOptions{})
	if p := untrusting.Ping(ctx, reg.Host); p.Reachable || !strings.Contains(p.Note, "unknown authority") {
		t.Errorf("Ping without the CA = %+v; want an unknown-authority note", p)
	}
}

func dockerConfigWith(t *testing.T, host, user, password string) string {
	dir := t.TempDir()
	b, _ := json.Marshal(map[string]any{"auths": map[string]any{
		host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password))},
	}})
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}
