package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
)

// tokenResponse is a token server's answer (the distribution token spec and
// its OAuth2 form).
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

// fetchToken gets a Bearer token for scope from the challenge's realm:
// GET with basic credentials (or none: anonymous), or, for an identity
// token, the OAuth2 refresh_token grant by POST.
func (h *hostClient) fetchToken(ctx context.Context, ch Challenge, auth authn.AuthConfig, scope string) (token, error) {
	now := time.Now()
	if auth.RegistryToken != "" {
		return token{header: "Bearer " + auth.RegistryToken, expires: now.Add(defaultTokenLifetime)}, nil
	}
	realm := ch.Params["realm"]
	u, err := h.checkRealm(realm)
	if err != nil {
		return token{}, err
	}
	service := ch.Params["service"]
	var req *http.Request
	if auth.IdentityToken != "" {
		form := url.Values{
			"grant_type":    {"refresh_token"},
			"refresh_token": {auth.IdentityToken},
			"client_id":     {"detour"},
			"service":       {service},
		}
		if scope != "" {
			form.Set("scope", scope)
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		q := u.Query()
		if service != "" {
			q.Set("service", service)
		}
		if scope != "" {
			q.Set("scope", scope)
		}
		u.RawQuery = q.Encode()
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err == nil && (auth.Username != "" || auth.Password != "") {
			req.Header.Set("Authorization", "Basic "+basicAuth(auth.Username, auth.Password))
		}
	}
	if err != nil {
		return token{}, fmt.Errorf("token request to %s: %w", realm, err)
	}
	req.Header["User-Agent"] = h.c.userAgent
	resp, err := h.http.Do(req)
	if err != nil {
		return token{}, fmt.Errorf("token request to %s: %w", realm, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenBody))
	if err != nil {
		return token{}, fmt.Errorf("token request to %s: %w", realm, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return token{}, fmt.Errorf("token request to %s: %w: the token server refused the credentials (%d)", realm, ErrUnauthorized, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return token{}, fmt.Errorf("token request to %s: %w", realm, &StatusError{Status: resp.StatusCode})
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return token{}, fmt.Errorf("token request to %s: decoding the answer: %w", realm, err)
	}
	tok := tr.Token
	if tok == "" {
		tok = tr.AccessToken
	}
	if tok == "" {
		return token{}, fmt.Errorf("token request to %s: the answer holds no token", realm)
	}
	return token{header: "Bearer " + tok, expires: now.Add(tokenLifetime(tr.ExpiresIn))}, nil
}

// tokenLifetime is how long to use a token the server says lives
// expiresIn seconds.
func tokenLifetime(expiresIn int) time.Duration {
	life := defaultTokenLifetime
	if expiresIn > 0 {
		life = time.Duration(expiresIn) * time.Second
	}
	if life > 2*tokenExpiryMargin {
		return life - tokenExpiryMargin
	}
	return life / 2
}

// checkRealm parses a realm and refuses what would leak credentials: any
// scheme but https, and http unless the registry itself speaks plain HTTP.
func (h *hostClient) checkRealm(realm string) (*url.URL, error) {
	if realm == "" {
		return nil, fmt.Errorf("bearer challenge from %s: %w: no realm", h.name, ErrUnauthorized)
	}
	u, err := url.Parse(realm)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("bearer challenge from %s: invalid realm %q", h.name, realm)
	}
	scheme, _ := h.scheme.Load().(string)
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && scheme == "http":
	default:
		return nil, fmt.Errorf("bearer challenge from %s: realm %q refused: a token realm must use https (or http for a plain-HTTP registry)", h.name, realm)
	}
	return u, nil
}

func basicAuth(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

// decodeBasic splits the "auth" field of a docker config entry.
func decodeBasic(auth string) (user, password string) {
	b, err := base64.StdEncoding.DecodeString(auth)
	if err != nil {
		return "", ""
	}
	user, password, _ = strings.Cut(string(b), ":")
	return user, password
}
