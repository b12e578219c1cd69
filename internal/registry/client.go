package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/detourhq/detour/internal/rules"
)

// The manifest media types a HEAD accepts. All four are needed: see the
// package documentation.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeOCIManifest        = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIIndex           = "application/vnd.oci.image.index.v1+json"
)

// manifestAccept is the Accept header of every manifest request, built once.
var manifestAccept = []string{strings.Join([]string{
	MediaTypeDockerManifest, MediaTypeDockerManifestList, MediaTypeOCIManifest, MediaTypeOCIIndex,
}, ", ")}

// Defaults of ClientOptions.
const (
	// DefaultTimeout bounds one registry request; the spec's check.timeout.
	DefaultTimeout = time.Second
	// MaxIdleConnsPerHost is how many idle connections each registry's
	// Transport keeps. The webhook checks all images of a Pod in parallel
	// (rarely more than 8 containers) and admits several Pods at once while a
	// Deployment scales; 16 keeps two such bursts on warm connections.
	MaxIdleConnsPerHost = 16
	// idleConnTimeout matches net/http's DefaultTransport.
	idleConnTimeout = 90 * time.Second
	// tokenExpiryMargin is taken off a token's lifetime so it is not used
	// in its last seconds, when it could expire on the way.
	tokenExpiryMargin = 10 * time.Second
	// defaultTokenLifetime is what the token spec says to assume when the
	// token server does not say (expires_in absent).
	defaultTokenLifetime = 60 * time.Second
	// maxTokensPerHost bounds the token cache of one registry (one token per
	// repository scope); past it the cache starts over.
	maxTokensPerHost = 1024
	// maxTokenBody bounds a token server's answer.
	maxTokenBody = 1 << 20
	// dockerHubAPI is the host behind the docker.io name.
	dockerHubAPI = "registry-1.docker.io"
)

// Errors a check can end with, wrapped with the operation and the input.
var (
	// ErrUnauthorized: the registry refused the credentials, or there were
	// none and it wants some.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrDigestMismatch: asked by digest, the registry named another digest.
	ErrDigestMismatch = errors.New("registry answered a different digest")
)

// StatusError is an answer with a status the operation does not expect.
type StatusError struct {
	// Status is the HTTP status code.
	Status int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("unexpected status %d %s", e.Status, http.StatusText(e.Status))
}

// ClientOptions configures a Client. The zero value is usable.
type ClientOptions struct {
	// Timeout bounds each request (0: DefaultTimeout).
	Timeout time.Duration
	// Insecure lists registries (host[:port]; a host without a port stands
	// for all its ports) that may be reached over plain HTTP, like loopback
	// ones. Certificates are still verified when they speak HTTPS.
	Insecure []string
	// Keychain gives the credentials of a registry (nil: the docker config,
	// authn.DefaultKeychain).
	Keychain authn.Keychain
	// RootCAs verifies registry certificates (nil: the system roots).
	RootCAs *x509.CertPool
	// UserAgent is sent with every request ("" : "detour").
	UserAgent string
	// Logger receives debug lines about auth and scheme decisions (nil:
	// discarded).
	Logger *slog.Logger
}

// Client talks to registries: manifest HEADs and pings, with auth. It is
// safe for concurrent use; one Client should serve the whole process, so
// that connections and tokens are reused.
type Client struct {
	timeout   time.Duration
	insecure  map[string]bool
	keychain  authn.Keychain
	rootCAs   *x509.CertPool
	userAgent []string
	log       *slog.Logger

	mu    sync.Mutex
	hosts map[string]*hostClient
}

// NewClient makes a Client.
func NewClient(o ClientOptions) *Client {
	c := &Client{
		timeout:   o.Timeout,
		insecure:  map[string]bool{},
		keychain:  o.Keychain,
		rootCAs:   o.RootCAs,
		userAgent: []string{o.UserAgent},
		log:       o.Logger,
		hosts:     map[string]*hostClient{},
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	for _, h := range o.Insecure {
		c.insecure[strings.ToLower(strings.TrimSpace(h))] = true
	}
	if c.keychain == nil {
		c.keychain = authn.DefaultKeychain
	}
	if o.UserAgent == "" {
		c.userAgent = []string{"detour"}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Close closes the idle connections of every registry.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range c.hosts {
		h.tr.CloseIdleConnections()
	}
}

// imageRef is an image split into what a manifest request needs.
type imageRef struct {
	host string // registry as named in the image, normalised ("docker.io")
	repo string // repository path ("library/nginx")
	ref  string // digest if there is one, else tag, else "latest"
	dgst bool   // ref is a digest
}

// parseImage splits an image reference ("nginx", "host:5000/a/b:1@sha256:…").
func parseImage(image string) (imageRef, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return imageRef{}, fmt.Errorf("parsing image %q: %w", image, err)
	}
	r := imageRef{host: reference.Domain(named), repo: reference.Path(named), ref: "latest"}
	if t, ok := named.(reference.Tagged); ok {
		r.ref = t.Tag()
	}
	if d, ok := named.(reference.Digested); ok {
		r.ref, r.dgst = d.Digest().String(), true
	}
	return r, nil
}

// Has reports whether the image's registry has its manifest (one HEAD,
// plus the auth dance on a 401). It caches nothing but connections and
// tokens; see Checker for the cached form.
func (c *Client) Has(ctx context.Context, image string) (bool, error) {
	r, err := parseImage(image)
	if err != nil {
		return false, err
	}
	has, err := c.host(r.host).headManifest(ctx, r)
	if err != nil {
		return false, fmt.Errorf("checking %s: %w", image, err)
	}
	return has, nil
}

// host returns the client of one registry, making it on first use.
func (c *Client) host(name string) *hostClient {
	name = strings.ToLower(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := c.hosts[name]; ok {
		return h
	}
	h := c.newHost(name)
	c.hosts[name] = h
	return h
}

func (c *Client) newHost(name string) *hostClient {
	api := name
	if name == "docker.io" {
		api = dockerHubAPI
	}
	dialer := &net.Dialer{Timeout: c.timeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: c.rootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   c.timeout,
		ResponseHeaderTimeout: c.timeout,
		MaxIdleConns:          MaxIdleConnsPerHost * 2, // the registry and its token realm
		MaxIdleConnsPerHost:   MaxIdleConnsPerHost,
		IdleConnTimeout:       idleConnTimeout,
		ForceAttemptHTTP2:     true,
	}
	h := &hostClient{
		c:       c,
		name:    name,
		api:     api,
		plainOK: rules.IsLoopback(api) || c.insecure[name] || c.insecure[hostOnly(name)],
		tr:      tr,
		http: &http.Client{
			Transport: tr,
			Timeout:   c.timeout,
			// A registry may redirect a manifest request (to a CDN, or
			// HTTP to HTTPS); the default policy of 10 hops is fine, and
			// net/http drops Authorization on a redirect to another host.
		},
		tokens: map[string]token{},
	}
	if !h.plainOK {
		h.scheme.Store("https")
	}
	return h
}

// hostOnly strips the port and the IPv6 brackets from host[:port].
func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
}

// hostClient is everything kept per registry host.
type hostClient struct {
	c       *Client
	name    string // as in image references, lower case
	api     string // host[:port] to dial
	plainOK bool   // plain HTTP allowed (loopback or insecure)
	tr      *http.Transport
	http    *http.Client
	scheme  atomic.Value // string: "https", "http", or unset while unknown

	mu     sync.Mutex
	basic  string           // Authorization for Basic auth, once known to be needed
	bearer bool             // the registry wants Bearer tokens
	tokens map[string]token // scope -> token
}

type token struct {
	header  string // "Bearer …"
	expires time.Time
}

// headManifest does the manifest HEAD.
func (h *hostClient) headManifest(ctx context.Context, r imageRef) (bool, error) {
	path := "/v2/" + r.repo + "/manifests/" + r.ref
	resp, err := h.do(ctx, http.MethodHead, path, "repository:"+r.repo+":pull", manifestAccept)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		if got := resp.Header.Get("Docker-Content-Digest"); r.dgst && got != "" && got != r.ref {
			return false, fmt.Errorf("HEAD %s: %w: %s", path, ErrDigestMismatch, got)
		}
		return true, nil
	case http.StatusNotFound:
		return false, nil
	case http.StatusUnauthorized:
		return false, fmt.Errorf("HEAD %s: %w", path, ErrUnauthorized)
	}
	return false, fmt.Errorf("HEAD %s: %w", path, &StatusError{Status: resp.StatusCode})
}

// do sends a request with the credentials known to work, and on a 401 does
// the auth dance and retries once. The caller closes the body.
func (h *hostClient) do(ctx context.Context, method, path, scope string, accept []string) (*http.Response, error) {
	resp, err := h.send(ctx, method, path, h.cachedAuth(scope), accept, nil)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	challenges := resp.Header.Values("WWW-Authenticate")
	drain(resp)
	authz, err := h.authorize(ctx, challenges, scope)
	if err != nil {
		return nil, err
	}
	return h.send(ctx, method, path, authz, accept, nil)
}

// send sends one request, choosing the scheme: HTTPS, or for a host that
// may use plain HTTP and has not shown which it speaks, HTTPS first and plain
// HTTP when the server answers HTTPS with HTTP. elapsed, when not nil,
// receives the duration of the attempt that answered.
func (h *hostClient) send(ctx context.Context, method, path, authz string, accept []string, elapsed *time.Duration) (*http.Response, error) {
	scheme, _ := h.scheme.Load().(string)
	known := scheme != ""
	if !known {
		scheme = "https"
	}
	resp, err := h.attempt(ctx, scheme, method, path, authz, accept, elapsed)
	if !known && err != nil && errors.Is(err, http.ErrSchemeMismatch) {
		h.c.log.Debug("registry speaks plain HTTP", "registry", h.name)
		scheme = "http"
		resp, err = h.attempt(ctx, scheme, method, path, authz, accept, elapsed)
	}
	if err == nil && !known {
		h.scheme.Store(scheme)
	}
	return resp, err
}

func (h *hostClient) attempt(ctx context.Context, scheme, method, path, authz string, accept []string, elapsed *time.Duration) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, scheme+"://"+h.api+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header["User-Agent"] = h.c.userAgent
	if accept != nil {
		req.Header["Accept"] = accept
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	start := time.Now()
	resp, err := h.http.Do(req)
	if elapsed != nil {
		*elapsed = time.Since(start)
	}
	return resp, err
}

// cachedAuth returns the Authorization known to work for scope, or "".
func (h *hostClient) cachedAuth(scope string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.bearer {
		if t, ok := h.tokens[scope]; ok && time.Now().Before(t.expires) {
			return t.header
		}
		return ""
	}
	return h.basic
}

// authorize answers a 401's challenges: the Authorization to retry with.
func (h *hostClient) authorize(ctx context.Context, headers []string, scope string) (string, error) {
	var all []Challenge
	for _, v := range headers {
		cs, err := ParseChallenges(v)
		if err != nil {
			return "", fmt.Errorf("401 from %s: %w", h.name, err)
		}
		all = append(all, cs...)
	}
	auth, err := h.credentials(ctx)
	if err != nil {
		return "", err
	}
	if ch, ok := findChallenge(all, "bearer"); ok {
		tok, err := h.fetchToken(ctx, ch, auth, scope)
		if err != nil {
			return "", err
		}
		h.mu.Lock()
		h.bearer = true
		if len(h.tokens) >= maxTokensPerHost {
			clear(h.tokens)
		}
		h.tokens[scope] = tok
		h.mu.Unlock()
		return tok.header, nil
	}
	if _, ok := findChallenge(all, "basic"); ok {
		if auth.Username == "" && auth.Password == "" {
			return "", fmt.Errorf("%s wants basic auth: %w: no credentials for it in the docker config", h.name, ErrUnauthorized)
		}
		header := "Basic " + basicAuth(auth.Username, auth.Password)
		h.mu.Lock()
		h.basic, h.bearer = header, false
		h.mu.Unlock()
		return header, nil
	}
	return "", fmt.Errorf("401 from %s: %w: no Basic or Bearer challenge in %q", h.name, ErrUnauthorized, headers)
}

// credentials resolves the registry's credentials from the keychain; the
// zero AuthConfig means anonymous.
func (h *hostClient) credentials(ctx context.Context) (authn.AuthConfig, error) {
	res := keychainResource{name: h.name}
	if h.name == "docker.io" {
		res.name = "index.docker.io" // the key docker login writes
	}
	a, err := authn.Resolve(ctx, h.c.keychain, res)
	if err != nil {
		return authn.AuthConfig{}, fmt.Errorf("reading credentials for %s: %w", h.name, err)
	}
	cfg, err := authn.Authorization(ctx, a)
	if err != nil {
		return authn.AuthConfig{}, fmt.Errorf("reading credentials for %s: %w", h.name, err)
	}
	if cfg.Username == "" && cfg.Auth != "" {
		cfg.Username, cfg.Password = decodeBasic(cfg.Auth)
	}
	return *cfg, nil
}

// keychainResource names a registry to a keychain (authn.Resource).
type keychainResource struct{ name string }

func (r keychainResource) String() string      { return r.name }
func (r keychainResource) RegistryStr() string { return r.name }

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}
