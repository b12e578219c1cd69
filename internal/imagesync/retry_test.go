package imagesync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		"0":                             0,
		"-1":                            0,
		"soon":                          0,
		"999999":                        24 * time.Hour,
		"Thu, 02 Jan 2025 03:04:15 GMT": 10 * time.Second,
		"Thu, 02 Jan 2025 03:00:00 GMT": 0, // in the past
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestRetryable(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err   error
		retry bool
		after time.Duration
	}{
		{&StatusError{Status: 429, RetryAfter: 2 * time.Second}, true, 2 * time.Second},
		{&StatusError{Status: 503}, true, 0},
		{&StatusError{Status: 500}, true, 0},
		{&StatusError{Status: 502}, true, 0},
		{&StatusError{Status: 504}, true, 0},
		{&StatusError{Status: 408}, true, 0},
		{&StatusError{Status: 404}, false, 0},
		{&StatusError{Status: 401}, false, 0},
		{&StatusError{Status: 400}, false, 0},
		{fmt.Errorf("upload: %w", syscall.ECONNRESET), true, 0},
		{&url.Error{Op: "Get", URL: "x", Err: io.ErrUnexpectedEOF}, true, 0},
		{syscall.EPIPE, true, 0},
		{syscall.ECONNREFUSED, false, 0},
		{context.Canceled, false, 0},
		{errors.Join(syscall.ECONNRESET, context.DeadlineExceeded), false, 0},
		{errors.New("manifest sha256:x: its content has digest sha256:y"), false, 0},
	} {
		after, ok := retryable(c.err)
		if ok != c.retry || after != c.after {
			t.Errorf("retryable(%v) = %v, %v; want %v, %v", c.err, after, ok, c.after, c.retry)
		}
	}
}

func TestRetryHonoursRetryAfterAndStops(t *testing.T) {
	t.Parallel()
	p := Retry{Attempts: 4, Initial: time.Millisecond, Max: 4 * time.Millisecond, MaxRetryAfter: 3 * time.Second, Budget: time.Minute}
	var waits []time.Duration
	notify := func(_ error, d time.Duration) { waits = append(waits, d) }

	// A 429 asking for 0 s more than the backoff: the computed wait; then a
	// Retry-After within the cap is used as is; success on the third try.
	calls := 0
	err := retry(context.Background(), p, notify, func() error {
		calls++
		switch calls {
		case 1:
			return &StatusError{Status: 503}
		case 2:
			return &StatusError{Status: 429, RetryAfter: 20 * time.Millisecond}
		}
		return nil
	})
	if err != nil || calls != 3 || len(waits) != 2 || waits[0] > time.Millisecond || waits[1] != 20*time.Millisecond {
		t.Errorf("err %v, calls %d, waits %v", err, calls, waits)
	}

	// Attempts bound the tries.
	calls, waits = 0, nil
	err = retry(context.Background(), p, notify, func() error { calls++; return syscall.ECONNRESET })
	if !errors.Is(err, syscall.ECONNRESET) || calls != 4 || len(waits) != 3 {
		t.Errorf("err %v, calls %d, waits %v", err, calls, waits)
	}
	for i, w := range waits {
		if w > p.Max {
			t.Errorf("wait %d is %v, over Max %v", i, w, p.Max)
		}
	}

	// Not retryable: one call.
	calls = 0
	err = retry(context.Background(), p, nil, func() error { calls++; return &StatusError{Status: 404} })
	if calls != 1 || err == nil {
		t.Errorf("404: calls %d, err %v", calls, err)
	}

	// A Retry-After over the cap is a failure, not a wait.
	calls, waits = 0, nil
	err = retry(context.Background(), p, notify, func() error { calls++; return &StatusError{Status: 429, RetryAfter: time.Hour} })
	if calls != 1 || len(waits) != 0 || err == nil {
		t.Errorf("an hour's Retry-After: calls %d, waits %v, err %v", calls, waits, err)
	}

	// Cancellation ends the wait.
	ctx, cancel := context.WithCancel(context.Background())
	calls = 0
	err = retry(ctx, Retry{Attempts: 3, Initial: time.Hour, Max: time.Hour, MaxRetryAfter: time.Hour, Budget: 10 * time.Hour}, nil, func() error {
		calls++
		cancel()
		return &StatusError{Status: 503}
	})
	if calls != 1 || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: calls %d, err %v", calls, err)
	}
}

func TestPlainHTTPOnlyForLoopbackAndInsecure(t *testing.T) {
	t.Parallel()
	c := newClient(http.DefaultTransport, nil, []string{"registry.lan:5000", "Other.LAN"}, "test")
	for host, want := range map[string]bool{
		"127.0.0.1:5000":    true,
		"127.1.2.3":         true,
		"localhost":         true,
		"localhost:5000":    true,
		"LOCALHOST:1":       true,
		"[::1]:5000":        true,
		"::1":               true,
		"registry.lan:5000": true,
		"other.lan":         true,
		"registry.lan":      false, // another port is another registry
		"10.0.0.1:5000":     false, // go-containerregistry alone would try HTTP here
		"192.168.1.1":       false,
		"quay.io":           false,
		"localhost.evil.io": false,
	} {
		if got := c.plainHTTP(host); got != want {
			t.Errorf("plainHTTP(%q) = %v, want %v", host, got, want)
		}
	}
}

type recordingRT struct{ n int }

func (r *recordingRT) RoundTrip(*http.Request) (*http.Response, error) {
	r.n++
	return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
}

func TestHTTPGuardRefusesPlainHTTPUnlessAllowed(t *testing.T) {
	t.Parallel()
	inner := &recordingRT{}
	g := &httpGuard{inner: inner, host: "10.0.0.1:5000"}
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"http://10.0.0.1:5000/v2/", false},
		{"https://10.0.0.1:5000/v2/", true},
		{"http://auth.elsewhere/token", true}, // not the registry: the realm check is go-containerregistry's
	} {
		req, _ := http.NewRequest(http.MethodGet, c.url, nil)
		_, err := g.RoundTrip(req)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrPlainHTTP)) {
			t.Errorf("%s: %v", c.url, err)
		}
	}
	if inner.n != 2 {
		t.Errorf("inner transport saw %d requests, want 2", inner.n)
	}
	g.allow = true
	req, _ := http.NewRequest(http.MethodGet, "http://10.0.0.1:5000/v2/", nil)
	if _, err := g.RoundTrip(req); err != nil {
		t.Errorf("allowed: %v", err)
	}
}

func TestRetryableKnowsGoContainerregistryErrors(t *testing.T) {
	t.Parallel()
	for code, want := range map[int]bool{429: true, 503: true, 401: false, 404: false} {
		err := fmt.Errorf("ping: %w", &transport.Error{StatusCode: code})
		if _, ok := retryable(err); ok != want {
			t.Errorf("transport.Error %d: retryable %v, want %v", code, ok, want)
		}
	}
}
