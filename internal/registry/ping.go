package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Ping is what a probe of a registry's /v2/ found.
type Ping struct {
	// Registry is the registry probed, as named in images ("docker.io").
	Registry string
	// URL is the URL that answered, or the last one tried.
	URL string
	// Reachable is true when an HTTP answer came back, whatever its status.
	Reachable bool
	// Latency is the time of the first answer, connection set-up included.
	Latency time.Duration
	// Status is the status of the last answer (after the auth dance).
	Status int
	// Auth is the scheme /v2/ asked for: "none", "basic" or "bearer"; ""
	// when unreachable.
	Auth string
	// Login says how the auth went: "anonymous" (no credentials needed or
	// an anonymous token), "accepted", "rejected", "no credentials", or ""
	// when there was no auth or it could not be tried.
	Login string
	// Note states problems in plain words (TLS, network, odd answers); ""
	// when there are none.
	Note string
	// Err is the error behind Note, if any.
	Err error
}

// Healthy reports whether the registry answers like a working registry: a
// 200 or 401 to /v2/.
func (p Ping) Healthy() bool {
	return p.Reachable && p.Err == nil && p.Status < 500
}

// Ping probes GET /v2/ on a registry (host[:port], or "docker.io"), follows
// a 401 with the auth dance to see whether the credentials work, and
// describes what went wrong in Note. It never returns an error: problems
// are in the result.
func (c *Client) Ping(ctx context.Context, registry string) Ping {
	h := c.host(registry)
	p := Ping{Registry: h.name}
	var lat time.Duration
	resp, err := h.send(ctx, http.MethodGet, "/v2/", "", nil, &lat)
	p.URL = h.url("/v2/")
	if err != nil {
		p.Err, p.Note = err, Explain(err)
		return p
	}
	p.Reachable, p.Latency, p.Status = true, lat, resp.StatusCode
	challenges := resp.Header.Values("WWW-Authenticate")
	drain(resp)
	var notes []string
	if strings.HasPrefix(p.URL, "http:") {
		notes = append(notes, "plain HTTP")
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		p.Auth = "none"
	case resp.StatusCode == http.StatusUnauthorized:
		p.Auth = "unknown"
		for _, v := range challenges {
			if cs, err := ParseChallenges(v); err == nil && len(cs) > 0 {
				p.Auth = strings.ToLower(cs[0].Scheme)
				break
			}
		}
		login, status, err := h.login(ctx, challenges)
		p.Login = login
		if status != 0 {
			p.Status = status
		}
		if err != nil {
			p.Err = err
			notes = append(notes, Explain(err))
		}
	case resp.StatusCode == http.StatusNotFound:
		p.Err = &StatusError{Status: resp.StatusCode}
		notes = append(notes, "not a registry: /v2/ answers 404")
	default:
		p.Err = &StatusError{Status: resp.StatusCode}
		notes = append(notes, fmt.Sprintf("/v2/ answers %d %s", resp.StatusCode, http.StatusText(resp.StatusCode)))
	}
	p.Note = strings.Join(notes, "; ")
	return p
}

// login does what docker login does after a 401 on /v2/: authorize without
// a repository scope and try again. It returns the Login word, the status
// of the retry (0 if none) and the error that stopped it.
func (h *hostClient) login(ctx context.Context, challenges []string) (string, int, error) {
	cred, err := h.credentials(ctx)
	if err != nil {
		return "", 0, err
	}
	anonymous := cred == (authn.AuthConfig{})
	authz, err := h.authorize(ctx, challenges, "")
	if err != nil {
		if anonymous {
			return "no credentials", 0, err
		}
		if errors.Is(err, ErrUnauthorized) {
			return "rejected", 0, err
		}
		return "", 0, err
	}
	resp, err := h.send(ctx, http.MethodGet, "/v2/", authz, nil, nil)
	if err != nil {
		return "", 0, err
	}
	drain(resp)
	switch {
	case resp.StatusCode == http.StatusOK && anonymous:
		return "anonymous", resp.StatusCode, nil
	case resp.StatusCode == http.StatusOK:
		return "accepted", resp.StatusCode, nil
	case resp.StatusCode == http.StatusUnauthorized && anonymous:
		return "no credentials", resp.StatusCode, fmt.Errorf("GET /v2/ on %s: %w: no credentials for it in the docker config", h.name, ErrUnauthorized)
	case resp.StatusCode == http.StatusUnauthorized:
		return "rejected", resp.StatusCode, fmt.Errorf("GET /v2/ on %s: %w: the credentials were refused", h.name, ErrUnauthorized)
	}
	return "", resp.StatusCode, fmt.Errorf("GET /v2/ on %s: %w", h.name, &StatusError{Status: resp.StatusCode})
}

// url is the URL of path on the registry, with the scheme in use (https
// while unknown).
func (h *hostClient) url(path string) string {
	scheme, _ := h.scheme.Load().(string)
	if scheme == "" {
		scheme = "https"
	}
	return scheme + "://" + h.api + path
}

// Explain says in plain words what an error from this package means for a
// person: TLS problems, refused connections, timeouts, unknown hosts.
func Explain(err error) string {
	if err == nil {
		return ""
	}
	var (
		unknownCA x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		hostname  x509.HostnameError
		record    tls.RecordHeaderError
		dnsErr    *net.DNSError
		netErr    net.Error
		status    *StatusError
	)
	switch {
	case errors.Is(err, ErrMarkedDown):
		return err.Error()
	case errors.As(err, &unknownCA):
		s := "TLS: certificate signed by an unknown authority"
		if unknownCA.Cert != nil && unknownCA.Cert.Issuer.CommonName != "" {
			s += fmt.Sprintf(" (%q)", unknownCA.Cert.Issuer.CommonName)
		}
		return s
	case errors.As(err, &invalid):
		if invalid.Reason == x509.Expired && invalid.Cert != nil {
			if time.Now().Before(invalid.Cert.NotBefore) {
				return "TLS: certificate not valid before " + invalid.Cert.NotBefore.UTC().Format(time.DateOnly)
			}
			return "TLS: certificate expired on " + invalid.Cert.NotAfter.UTC().Format(time.DateOnly)
		}
		return "TLS: invalid certificate: " + invalid.Error()
	case errors.As(err, &hostname):
		names := []string{}
		if hostname.Certificate != nil {
			names = append(names, hostname.Certificate.DNSNames...)
			for _, ip := range hostname.Certificate.IPAddresses {
				names = append(names, ip.String())
			}
			if len(names) == 0 && hostname.Certificate.Subject.CommonName != "" {
				names = append(names, hostname.Certificate.Subject.CommonName)
			}
		}
		return fmt.Sprintf("TLS: certificate is for %s, not %s", strings.Join(names, ", "), hostname.Host)
	case errors.Is(err, http.ErrSchemeMismatch):
		return "speaks plain HTTP, not HTTPS (list it under insecureRegistries to allow that)"
	case errors.As(err, &record):
		return "TLS: the server does not speak TLS on this port"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "no answer in time"
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return fmt.Sprintf("host name %s not found", dnsErr.Name)
		}
		return "DNS lookup failed: " + dnsErr.Err
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (nothing listening)"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the server"
	case errors.Is(err, ErrUnauthorized):
		return err.Error()
	case errors.As(err, &status):
		return status.Error()
	}
	var tlsAlert tls.AlertError
	if errors.As(err, &tlsAlert) {
		return "TLS handshake refused by the server: " + tlsAlert.Error()
	}
	return err.Error()
}
