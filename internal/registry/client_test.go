package registry

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
)

// staticKeychain hands out fixed credentials per registry host.
type staticKeychain map[string]authn.AuthConfig

func (k staticKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if cfg, ok := k[r.RegistryStr()]; ok {
		return authn.FromConfig(cfg), nil
	}
	return authn.Anonymous, nil
}

func TestClientHas(t *testing.T) {
	t.Parallel()
	reg := newMemRegistry(t)
	d := push(t, reg.Host, "team/app:1.0")
	other := push(t, reg.Host, "team/other:1")
	c := newTestClient(t, ClientOptions{})
	tests := []struct {
		image string
		want  bool
	}{
		{reg.Host + "/team/app:1.0", true},
		{reg.Host + "/team/app@" + d.String(), true},
		{reg.Host + "/team/app:1.0@" + d.String(), true}, // by digest, as a runtime pulls it
		{reg.Host + "/team/app:2.0", false},
		{reg.Host + "/team/app@" + other.String(), false},
		{reg.Host + "/team/missing:1.0", false},
		{reg.Host + "/team/other", false}, // "latest" was never pushed
	}
	for _, tt := range tests {
		got, err := c.Has(context.Background(), tt.image)
		if err != nil || got != tt.want {
			t.Errorf("Has(%s) = %v, %v; want %v", tt.image, got, err, tt.want)
		}
	}
	if _, err := c.Has(context.Background(), "UPPER/case"); err == nil {
		t.Error("Has of an invalid reference did not fail")
	}
}

func TestClientHasAcceptsAllFourManifestTypesAndPrefersDigest(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var accept []string
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		accept, path = r.Header.Values("Accept"), r.URL.Path
		mu.Unlock()
		w.WriteHeader(http.StatusNotFound)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	c := newTestClient(t, ClientOptions{})
	dg := "sha256:" + strings.Repeat("ab", 32)
	if has, err := c.Has(context.Background(), host+"/a/b:1.25@"+dg); has || err != nil {
		t.Fatalf("Has = %v, %v; want false, nil for a 404", has, err)
	}
	mu.Lock()
	defer mu.Unlock()
	joined := strings.Join(accept, ",")
	for _, mt := range []string{MediaTypeDockerManifest, MediaTypeDockerManifestList, MediaTypeOCIManifest, MediaTypeOCIIndex} {
		if !strings.Contains(joined, mt) {
			t.Errorf("Accept %q lacks %s", joined, mt)
		}
	}
	if want := "/v2/a/b/manifests/" + dg; path != want {
		t.Errorf("path %s, want %s (the digest, not the tag)", path, want)
	}
}

func TestClientHasStatuses(t *testing.T) {
	t.Parallel()
	dg := "sha256:" + strings.Repeat("cd", 32)
	tests := []struct {
		name    string
		status  int
		header  string
		wantErr error // nil: no error
		outage  bool
	}{
		{name: "a 500 is an error and an outage", status: 500, outage: true},
		{name: "a 429 is an error and an outage", status: 429, outage: true},
		{name: "a 403 is an error, the registry is up", status: 403},
		{name: "a 200 naming another digest is not a yes", status: 200, header: "sha256:" + strings.Repeat("ef", 32), wantErr: ErrDigestMismatch},
		{name: "a 401 without a challenge is unauthorized", status: 401, wantErr: ErrUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.header != "" {
					w.Header().Set("Docker-Content-Digest", tt.header)
				}
				w.WriteHeader(tt.status)
			}))
			defer srv.Close()
			c := newTestClient(t, ClientOptions{})
			has, err := c.Has(context.Background(), strings.TrimPrefix(srv.URL, "http://")+"/a@"+dg)
			if has || err == nil {
				t.Fatalf("Has = %v, %v; want false and an error", has, err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
			var st *StatusError
			if tt.wantErr == nil && (!errors.As(err, &st) || st.Status != tt.status) {
				t.Errorf("error %v, want a StatusError %d", err, tt.status)
			}
			if isOutage(err) != tt.outage {
				t.Errorf("isOutage(%v) = %v, want %v", err, !tt.outage, tt.outage)
			}
		})
	}
}

func TestInsecureRegistriesMayUsePlainHTTP(t *testing.T) {
	t.Parallel()
	c := newTestClient(t, ClientOptions{Insecure: []string{"mirror.corp:5000", "Plain.Example"}})
	for host, plain := range map[string]bool{
		"mirror.corp:5000":   true,
		"mirror.corp:5001":   false, // another port is another registry
		"plain.example:8080": true,  // a host without a port stands for all ports
		"PLAIN.example":      true,
		"docker.io":          false,
		"127.0.0.1:5000":     true,
		"127.1.2.3":          true,
		"localhost:5000":     true,
		"[::1]:5000":         true,
		"quay.io":            false,
	} {
		h := c.host(host)
		if h.plainOK != plain {
			t.Errorf("%s: plain HTTP allowed = %v, want %v", host, h.plainOK, plain)
		}
		if s, _ := h.scheme.Load().(string); !plain && s != "https" {
			t.Errorf("%s: scheme %q before any request, want https", host, s)
		}
	}
	if got := c.host("docker.io").api; got != dockerHubAPI {
		t.Errorf("docker.io is reached at %s, want %s", got, dockerHubAPI)
	}
}

// tokenFront is a Bearer-token registry: a token server and an auth check
// in front of go-containerregistry's in-process registry, as a
// distribution deployment with a token service behaves.
type tokenFront struct {
	srv        *httptest.Server
	Host       string
	inner      http.Handler
	user, pass string
	identity   string // refresh token accepted by POST
	tokenReqs  atomic.Int64

	mu     sync.Mutex
	grants map[string]string // token -> scope
}

const frontService = "front.test"

func newTokenFront(t *testing.T, inner http.Handler, user, pass string) *tokenFront {
	f := &tokenFront{inner: inner, user: user, pass: pass, grants: map[string]string{}}
	f.srv = httptest.NewServer(f)
	f.Host = strings.TrimPrefix(f.srv.URL, "http://")
	t.Cleanup(f.srv.Close)
	return f
}

func (f *tokenFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		f.token(w, r)
		return
	}
	repo := ""
	if rest, ok := strings.CutPrefix(r.URL.Path, "/v2/"); ok {
		if i := strings.Index(rest, "/manifests/"); i >= 0 {
			repo = rest[:i]
		}
	}
	scope := ""
	if repo != "" {
		scope = "repository:" + repo + ":pull"
	}
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	granted, ok := f.grants[tok]
	f.mu.Unlock()
	if !ok || (scope != "" && granted != scope) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token",service="%s",scope="%s"`, f.Host, frontService, scope))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	f.inner.ServeHTTP(w, r)
}

func (f *tokenFront) token(w http.ResponseWriter, r *http.Request) {
	n := f.tokenReqs.Add(1)
	var scope, service string
	ok := false
	switch r.Method {
	case http.MethodGet:
		scope, service = r.URL.Query().Get("scope"), r.URL.Query().Get("service")
		u, p, basic := r.BasicAuth()
		ok = basic && u == f.user && p == f.pass
	case http.MethodPost:
		if err := r.ParseForm(); err == nil {
			scope, service = r.PostForm.Get("scope"), r.PostForm.Get("service")
			ok = r.PostForm.Get("grant_type") == "refresh_token" && f.identity != "" && r.PostForm.Get("refresh_token") == f.identity
		}
	}
	if !ok || service != frontService {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	tok := fmt.Sprintf("tok%d", n)
	f.mu.Lock()
	f.grants[tok] = scope
	f.mu.Unlock()
	key := "token"
	if r.Method == http.MethodPost {
		key = "access_token"
	}
	_ = json.NewEncoder(w).Encode(map[string]any{key: tok, "expires_in": 300})
}

func TestClientBearerTokenDance(t *testing.T) {
	t.Parallel()
	mem := newMemRegistry(t)
	push(t, mem.Host, "team/app:1")
	push(t, mem.Host, "team/app:2")
	push(t, mem.Host, "team/db:1")
	front := newTokenFront(t, mem.handler, "alice", "s3cret")
	front.identity = "refresh-me"
	ctx := context.Background()

	t.Run("credentials from the keychain get a token per repository, reused until it expires", func(t *testing.T) {
		c := newTestClient(t, ClientOptions{Keychain: staticKeychain{front.Host: {Username: "alice", Password: "s3cret"}}})
		before := front.tokenReqs.Load()
		for _, img := range []string{"team/app:1", "team/app:2", "team/app:3"} {
			has, err := c.Has(ctx, front.Host+"/"+img)
			if want := img != "team/app:3"; has != want || err != nil {
				t.Fatalf("Has(%s) = %v, %v; want %v", img, has, err, want)
			}
		}
		if got := front.tokenReqs.Load() - before; got != 1 {
			t.Errorf("%d token requests for one repository, want 1 (the token is reused)", got)
		}
		if has, err := c.Has(ctx, front.Host+"/team/db:1"); !has || err != nil {
			t.Fatalf("Has(team/db:1) = %v, %v", has, err)
		}
		if got := front.tokenReqs.Load() - before; got != 2 {
			t.Errorf("%d token requests for two repositories, want 2 (a token is scoped)", got)
		}
		p := c.Ping(ctx, front.Host)
		if !p.Healthy() || p.Auth != "bearer" || p.Login != "accepted" || p.Status != 200 {
			t.Errorf("Ping = %+v; want healthy, bearer, accepted, 200", p)
		}
	})
	t.Run("an identity token is exchanged by the OAuth2 refresh grant", func(t *testing.T) {
		c := newTestClient(t, ClientOptions{Keychain: staticKeychain{front.Host: {IdentityToken: "refresh-me"}}})
		if has, err := c.Has(ctx, front.Host+"/team/app:1"); !has || err != nil {
			t.Fatalf("Has = %v, %v; want true", has, err)
		}
	})
	t.Run("wrong credentials are unauthorized", func(t *testing.T) {
		c := newTestClient(t, ClientOptions{Keychain: staticKeychain{front.Host: {Username: "alice", Password: "wrong"}}})
		has, err := c.Has(ctx, front.Host+"/team/app:1")
		if has || !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("Has = %v, %v; want false, ErrUnauthorized", has, err)
		}
		if isOutage(err) {
			t.Error("refused credentials count as an outage; they must not mark the registry down")
		}
		p := c.Ping(ctx, front.Host)
		if p.Auth != "bearer" || p.Login != "rejected" || !strings.Contains(p.Note, "unauthorized") {
			t.Errorf("Ping = %+v; want bearer, rejected, a note saying unauthorized", p)
		}
	})
	t.Run("without credentials the token is asked for anonymously", func(t *testing.T) {
		c := newTestClient(t, ClientOptions{})
		before := front.tokenReqs.Load()
		has, err := c.Has(ctx, front.Host+"/team/app:1")
		if has || !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("Has = %v, %v; want false, ErrUnauthorized", has, err)
		}
		if front.tokenReqs.Load() == before {
			t.Error("no token request was made")
		}
	})
}

func TestRealmMustNotDowngradeToPlainHTTP(t *testing.T) {
	t.Parallel()
	c := newTestClient(t, ClientOptions{})
	h := c.host("registry.example")
	for realm, ok := range map[string]bool{
		"https://auth.example/token": true,
		"http://auth.example/token":  false, // the registry speaks https
		"ftp://auth.example/token":   false,
		"/token":                     false,
		"":                           false,
	} {
		if _, err := h.checkRealm(realm); (err == nil) != ok {
			t.Errorf("checkRealm(%q) error = %v, want ok=%v", realm, err, ok)
		}
	}
	p := c.host("127.0.0.1:1")
	p.scheme.Store("http")
	if _, err := p.checkRealm("http://127.0.0.1:2/token"); err != nil {
		t.Errorf("a plain-HTTP registry's http realm refused: %v", err)
	}
}

// testCA makes a CA and signs server certificates with it.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "detour test CA"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

func (ca *testCA) serve(t *testing.T, dns []string, ips []net.IP, notAfter time.Time) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "server"},
		NotBefore: notAfter.Add(-24 * time.Hour), NotAfter: notAfter,
		DNSNames: dns, IPAddresses: ips,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are the point
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "https://")
}

func TestPingExplainsProblemsInPlainWords(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	loop := []net.IP{net.IPv4(127, 0, 0, 1)}
	good := ca.serve(t, nil, loop, time.Now().Add(24*time.Hour))
	expired := ca.serve(t, nil, loop, time.Now().Add(-24*time.Hour))
	wrongName := ca.serve(t, []string{"registry.example"}, nil, time.Now().Add(24*time.Hour))
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer plain.Close()
	notRegistry := httptest.NewServer(http.NotFoundHandler())
	defer notRegistry.Close()
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	defer broken.Close()
	trusting := newTestClient(t, ClientOptions{RootCAs: ca.pool})
	system := newTestClient(t, ClientOptions{})
	tests := []struct {
		name      string
		client    *Client
		host      string
		reachable bool
		healthy   bool
		note      string // substring of Note; "" means Note must be empty
	}{
		{"a trusted certificate has nothing to note", trusting, good, true, true, ""},
		{"an unknown authority is named", system, good, false, false, `TLS: certificate signed by an unknown authority ("detour test CA")`},
		{"an expired certificate says when it expired", trusting, expired, false, false, "TLS: certificate expired on " + time.Now().Add(-24*time.Hour).UTC().Format(time.DateOnly)},
		{"a certificate for another name says which names it has", trusting, wrongName, false, false, "TLS: certificate is for registry.example, not 127.0.0.1"},
		{"plain HTTP on loopback is used and noted", system, strings.TrimPrefix(plain.URL, "http://"), true, true, "plain HTTP"},
		{"nothing listening is a refused connection", system, deadAddress(t), false, false, "connection refused"},
		{"a server that is not a registry", system, strings.TrimPrefix(notRegistry.URL, "http://"), true, false, "not a registry"},
		{"a failing registry is reachable but unhealthy", system, strings.TrimPrefix(broken.URL, "http://"), true, false, "503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.client.Ping(context.Background(), tt.host)
			if p.Reachable != tt.reachable || p.Healthy() != tt.healthy {
				t.Errorf("Ping(%s) = %+v; want reachable %v, healthy %v", tt.host, p, tt.reachable, tt.healthy)
			}
			if tt.note == "" && p.Note != "" || !strings.Contains(p.Note, tt.note) {
				t.Errorf("Ping(%s).Note = %q, want it to contain %q", tt.host, p.Note, tt.note)
			}
			if tt.reachable && p.Latency <= 0 {
				t.Errorf("Ping(%s).Latency = %v, want > 0", tt.host, p.Latency)
			}
		})
	}
}

func TestExplain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want string
	}{
		{&url.Error{Op: "Head", URL: "https://r/v2/", Err: http.ErrSchemeMismatch}, "speaks plain HTTP, not HTTPS"},
		{&url.Error{Op: "Get", URL: "https://r/v2/", Err: &net.DNSError{Name: "r.example", Err: "no such host", IsNotFound: true}}, "host name r.example not found"},
		{fmt.Errorf("checking x: %w", context.DeadlineExceeded), "no answer in time"},
		{&DownError{Registry: "m.example", Until: time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC), Failures: 3, Last: io.EOF}, "registry m.example is marked down until 10:00:00 after 3 consecutive failures (last: connection closed by the server)"},
	}
	for _, tt := range tests {
		if got := Explain(tt.err); !strings.Contains(got, tt.want) {
			t.Errorf("Explain(%v) = %q, want it to contain %q", tt.err, got, tt.want)
		}
	}
}
