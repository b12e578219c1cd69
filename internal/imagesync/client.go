package imagesync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/detourhq/detour/internal/rules"
)

// manifestAccept is sent with every manifest request. distribution 2.8
// converts an image to schema1 when Accept is missing, answers a manifest
// list's amd64 child when only the single-image type is accepted, and 404s
// an OCI index not accepted by type: all four, always.
var manifestAccept = []string{
	string(types.DockerManifestSchema2),
	string(types.DockerManifestList),
	string(types.OCIManifestSchema1),
	string(types.OCIImageIndex),
}

// Transport tuning. Blobs are tens of megabytes: big socket buffers save
// system calls on both ends; one connection per parallel transfer and two
// hosts (source and target) fit well under the idle limit.
const (
	ioBufferSize        = 256 << 10
	maxIdleConnsPerHost = 64
	// errorBodyLimit bounds how much of an error answer is read for its
	// message.
	errorBodyLimit = 16 << 10
)

// DefaultTransport returns the base transport sync uses when Options has
// none: http.DefaultTransport's settings with larger buffers and more idle
// connections per host, and no transparent gzip (blobs are compressed
// already).
func DefaultTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = maxIdleConnsPerHost
	tr.WriteBufferSize = ioBufferSize
	tr.ReadBufferSize = ioBufferSize
	tr.DisableCompression = true
	return tr
}

// client reaches registries, authenticating with the keychain. It pings each
// registry once and keeps one authenticated http.Client per repository and
// access.
type client struct {
	base     http.RoundTripper
	keychain authn.Keychain
	insecure map[string]bool // hosts allowed plain HTTP besides loopback
	agent    string

	mu   sync.Mutex
	regs map[string]*regConn
}

type regConn struct {
	reg  name.Registry
	once sync.Once
	err  error
	ch   *transport.Challenge
	auth authn.Authenticator
	base http.RoundTripper

	mu    sync.Mutex
	repos map[string]*repoConn // repository + "\x00" + access
}

// repoConn is an authenticated client for one repository.
type repoConn struct {
	http   *http.Client
	prefix string // scheme://host/v2/repository
	host   string // registry host, as in name.Registry.RegistryStr
	repo   string
}

func newClient(base http.RoundTripper, keychain authn.Keychain, insecure []string, agent string) *client {
	c := &client{base: base, keychain: keychain, insecure: map[string]bool{}, agent: agent, regs: map[string]*regConn{}}
	for _, h := range insecure {
		c.insecure[strings.ToLower(h)] = true
	}
	return c
}

// plainHTTP reports whether host may be reached over plain HTTP: loopback
// hosts (127.0.0.0/8, localhost, ::1) and the configured insecure registries.
func (c *client) plainHTTP(host string) bool {
	if c.insecure[strings.ToLower(host)] {
		return true
	}
	return rules.IsLoopback(host)
}

// repo returns an authenticated client for repo; push asks for push access.
func (c *client) repo(ctx context.Context, repo name.Repository, push bool) (*repoConn, error) {
	host := repo.RegistryStr()
	c.mu.Lock()
	rc := c.regs[host]
	if rc == nil {
		rc = &regConn{repos: map[string]*repoConn{}}
		c.regs[host] = rc
	}
	c.mu.Unlock()
	rc.once.Do(func() { rc.err = c.handshake(ctx, rc, repo.Registry) })
	if rc.err != nil {
		return nil, rc.err
	}
	access := transport.PullScope
	if push {
		access = transport.PushScope
	}
	key := repo.RepositoryStr() + "\x00" + access
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if r := rc.repos[key]; r != nil {
		return r, nil
	}
	rt, err := rc.transport(ctx, repo, access)
	if err != nil {
		return nil, err
	}
	scheme := "https"
	if rc.ch.Insecure {
		scheme = "http"
	}
	r := &repoConn{
		http:   &http.Client{Transport: rt},
		prefix: scheme + "://" + host + "/v2/" + repo.RepositoryStr(),
		host:   host,
		repo:   repo.RepositoryStr(),
	}
	rc.repos[key] = r
	return r, nil
}

// handshake pings the registry and resolves its credentials, once.
func (c *client) handshake(ctx context.Context, rc *regConn, reg name.Registry) error {
	host := reg.RegistryStr()
	opts := []name.Option{}
	if c.plainHTTP(host) {
		opts = append(opts, name.Insecure)
	}
	r, err := name.NewRegistry(host, opts...)
	if err != nil {
		return fmt.Errorf("registry %s: %w", host, err)
	}
	rc.reg = r
	rc.base = transport.NewUserAgent(&httpGuard{inner: c.base, host: host, allow: c.plainHTTP(host)}, c.agent)
	// Ping with an attempt budget of its own: a registry that is restarting
	// or rate-limiting answers the second time.
	err = retry(ctx, defaultRetry, nil, func() error {
		ch, err := transport.Ping(ctx, r, rc.base)
		rc.ch = ch
		return err
	})
	if err != nil {
		return fmt.Errorf("reaching registry %s: %w", host, err)
	}
	rc.auth, err = authn.Resolve(ctx, c.keychain, r)
	if err != nil {
		return fmt.Errorf("credentials for %s: %w", host, err)
	}
	return nil
}

// transport builds an authenticated transport for one repository: basic
// auth (or none) reuses the ping's answer; a bearer challenge gets a token
// for the repository's scope.
func (rc *regConn) transport(ctx context.Context, repo name.Repository, access string) (http.RoundTripper, error) {
	if !strings.EqualFold(rc.ch.Scheme, "bearer") {
		return transport.FromToken(rc.reg, rc.auth, rc.base, rc.ch, &transport.Token{})
	}
	scopes := []string{repo.Scope(access)}
	var tok *transport.Token
	err := retry(ctx, defaultRetry, nil, func() error {
		var err error
		tok, err = transport.Exchange(ctx, rc.reg, rc.auth, rc.base, scopes, rc.ch)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("token for %s (%s): %w", repo, access, err)
	}
	return transport.FromToken(rc.reg, rc.auth, rc.base, rc.ch, tok)
}

// httpGuard refuses plain-HTTP requests to a registry that is neither
// loopback nor listed as insecure. go-containerregistry falls back to HTTP
// for private (RFC 1918) addresses on its own; the spec allows it only for
// loopback and insecureRegistries, so credentials never cross a network in
// the clear unasked.
type httpGuard struct {
	inner http.RoundTripper
	host  string
	allow bool
}

// ErrPlainHTTP is returned for a plain-HTTP request the config does not allow.
var ErrPlainHTTP = errors.New("plain HTTP is allowed only for loopback registries and those listed in insecureRegistries")

func (g *httpGuard) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" && !g.allow && strings.EqualFold(r.URL.Host, g.host) {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, fmt.Errorf("%s %s: %w", r.Method, r.URL.Redacted(), ErrPlainHTTP)
	}
	return g.inner.RoundTrip(r)
}

// StatusError is an unexpected HTTP answer from a registry.
type StatusError struct {
	Method, URL string
	Status      int
	// RetryAfter is the answer's Retry-After, 0 when absent.
	RetryAfter time.Duration
	// Detail is the registry's error code and message, when it sent one.
	Detail string
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Status, http.StatusText(e.Status))
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// statusError reads a failed answer into a *StatusError and closes it.
func statusError(resp *http.Response) error {
	defer resp.Body.Close()
	e := &StatusError{Method: resp.Request.Method, URL: resp.Request.URL.Redacted(), Status: resp.StatusCode}
	e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	b, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyLimit))
	var body struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(b, &body) == nil && len(body.Errors) > 0 {
		var parts []string
		for _, x := range body.Errors {
			parts = append(parts, strings.TrimSpace(x.Code+" "+x.Message))
		}
		e.Detail = strings.Join(parts, "; ")
	} else if s := strings.TrimSpace(string(b)); s != "" && len(s) < 200 && !strings.ContainsAny(s, "<{") {
		e.Detail = s
	}
	return e
}

// do sends req and returns the answer when its status is one of ok; any
// other answer becomes a *StatusError.
func (r *repoConn) do(req *http.Request, ok ...int) (*http.Response, error) {
	resp, err := r.http.Do(req)
	if err != nil {
		return nil, err
	}
	for _, s := range ok {
		if resp.StatusCode == s {
			return resp, nil
		}
	}
	return nil, statusError(resp)
}

// drain reads what is left of a small answer so its connection is reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, errorBodyLimit))
	resp.Body.Close()
}
