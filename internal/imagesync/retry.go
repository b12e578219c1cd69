package imagesync

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Retry is the retry policy of every registry operation (one manifest
// request, one whole blob transfer). Waits grow exponentially from Initial
// by a factor of 2, up to Max, with jitter (each wait is drawn from its
// upper half); a Retry-After on the answer replaces the computed wait when
// longer, up to MaxRetryAfter.
type Retry struct {
	// Attempts bounds the tries of one operation, the first included.
	Attempts int
	// Initial is the wait after the first failure.
	Initial time.Duration
	// Max caps one computed wait.
	Max time.Duration
	// MaxRetryAfter caps a server's Retry-After: a registry asking for an
	// hour is treated as failing, not waited for.
	MaxRetryAfter time.Duration
	// Budget caps the time one operation spends waiting between tries.
	Budget time.Duration
}

// defaultRetry: go-containerregistry's default (1 s, ×3, 3 tries) both
// waits too long for one loopback 429 and gives up too early under a burst;
// these numbers ride out a restarting registry (~30 s of waits) while a
// single fault costs a fraction of a second. Registries send Retry-After in
// seconds, commonly 1 to 60.
var defaultRetry = Retry{
	Attempts:      8,
	Initial:       100 * time.Millisecond,
	Max:           8 * time.Second,
	MaxRetryAfter: 60 * time.Second,
	Budget:        2 * time.Minute,
}

// DefaultRetry returns the policy sync uses when Options.Retry is zero.
func DefaultRetry() Retry { return defaultRetry }

func (p Retry) orDefault() Retry {
	if p.Attempts <= 0 {
		return defaultRetry
	}
	return p
}

// retry runs op until it succeeds, fails for good, or the policy is spent.
// notify, when set, hears of each retry before its wait.
func retry(ctx context.Context, p Retry, notify func(err error, wait time.Duration), op func() error) error {
	p = p.orDefault()
	var waited time.Duration
	wait := p.Initial
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			return errors.Join(err, ctx.Err())
		}
		after, ok := retryable(err)
		if !ok || attempt >= p.Attempts {
			return err
		}
		d := wait/2 + rand.N(wait/2+1)
		if after > d {
			if after > p.MaxRetryAfter {
				return err
			}
			d = after
		}
		if waited+d > p.Budget {
			return err
		}
		waited += d
		wait = min(wait*2, p.Max)
		if notify != nil {
			notify(err, d)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
	}
}

// retryable reports whether err is worth another try, and the wait the
// server asked for. Retried: 408, 429, 500, 502, 503, 504, and transport
// failures that a second connection may not see (reset, broken pipe, a body
// cut short, a timeout). Not retried: other statuses, refused connections,
// DNS and TLS failures, cancellation.
func retryable(err error) (time.Duration, bool) {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return 0, false
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.RetryAfter, retryStatus(se.Status)
	}
	// go-containerregistry's own (from the ping and the token exchange).
	var te *transport.Error
	if errors.As(err, &te) {
		return 0, retryStatus(te.StatusCode)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, net.ErrClosed) {
		return 0, true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return 0, true
	}
	return 0, false
}

func retryStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests,
		http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// parseRetryAfter reads a Retry-After value: delay seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(min(s, 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
