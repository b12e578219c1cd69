package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server timeouts. The apiserver calls a webhook with a timeout of its own
// (timeoutSeconds, 10 s by default, 30 s at most) and keeps connections
// alive between calls.
const (
	// ReadHeaderTimeout bounds the arrival of a request's headers. The
	// apiserver sends them at once; a client that trickles them (slowloris)
	// is cut off.
	ReadHeaderTimeout = 10 * time.Second
	// ReadTimeout bounds reading a whole request, a 3 MiB body included.
	ReadTimeout = 20 * time.Second
	// WriteTimeout bounds the time from the end of the request headers to the
	// end of the answer. It is above the apiserver's 30 s maximum webhook
	// timeout so that an answer the apiserver still waits for is never cut
	// off; availability checks, the only slow part, stop at their budget.
	WriteTimeout = 35 * time.Second
	// IdleTimeout closes keep-alive connections idle this long. It is above
	// the 90 s after which the apiserver's HTTP client drops idle connections
	// itself, so the client closes them and never sends on one the server is
	// closing.
	IdleTimeout = 120 * time.Second
	// MaxHeaderBytes caps request headers; an AdmissionReview request has a
	// handful.
	MaxHeaderBytes = 64 << 10
	// ShutdownTimeout bounds the wait for in-flight requests on shutdown. It
	// is below Kubernetes' default terminationGracePeriodSeconds, 30 s, so
	// detour exits on its own before the kubelet kills it.
	ShutdownTimeout = 25 * time.Second

	// probeTimeout bounds each request to the probe port; a /metrics scrape
	// is the slowest, a few milliseconds.
	probeTimeout = 10 * time.Second
)

// Options configure Serve.
type Options struct {
	// Listen is the HTTPS address of /mutate, e.g. ":8443".
	Listen string
	// ProbeListen is the plain HTTP address of /healthz, /readyz and /metrics.
	ProbeListen string
	// Certs supplies the serving certificate on every handshake.
	Certs CertSource
	// Store holds the config in use.
	Store *Store
	// Metrics are updated by the handler; Gatherer serves them on /metrics.
	Metrics  *Metrics
	Gatherer prometheus.Gatherer
	// Log receives the server's log lines.
	Log *slog.Logger
	// Ready, when set, are called by /readyz besides the built-in checks
	// (config and certificate loaded, not shutting down); a non-nil error
	// makes detour not ready and is shown.
	Ready []func() error
	// Listening, when set, is called with both bound addresses once they
	// accept connections (tests listen on port 0).
	Listening func(webhook, probe net.Addr)
}

// Serve runs the webhook and probe servers until ctx is done, then shuts
// down gracefully: /readyz turns 503 at once, no new connection is accepted,
// and requests in flight are answered (for up to ShutdownTimeout). It
// returns an error only when a server cannot start or fails.
func Serve(ctx context.Context, o Options) error {
	log := orDiscard(o.Log)
	webhookLn, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", o.Listen, err)
	}
	probeLn, err := net.Listen("tcp", o.ProbeListen)
	if err != nil {
		webhookLn.Close()
		return fmt.Errorf("listening on %s: %w", o.ProbeListen, err)
	}

	var stopping atomic.Bool
	mux := http.NewServeMux()
	mux.Handle("/mutate", NewHandler(o.Store, o.Metrics, log))
	errorLog := slog.NewLogLogger(log.Handler(), slog.LevelDebug) // TLS handshake noise from probes and scanners
	webhookSrv := &http.Server{
		Handler: mux,
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: o.Certs.GetCertificate,
		},
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          errorLog,
	}
	probeSrv := &http.Server{
		Handler:           probeMux(o, &stopping),
		ReadHeaderTimeout: probeTimeout,
		ReadTimeout:       probeTimeout,
		WriteTimeout:      probeTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          errorLog,
	}

	errs := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := webhookSrv.ServeTLS(webhookLn, "", ""); !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("webhook server: %w", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := probeSrv.Serve(probeLn); !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("probe server: %w", err)
		}
	}()
	log.Info("serving", slog.String("webhook", "https://"+webhookLn.Addr().String()+"/mutate"),
		slog.String("probes", "http://"+probeLn.Addr().String()))
	if o.Listening != nil {
		o.Listening(webhookLn.Addr(), probeLn.Addr())
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errs:
	}
	stopping.Store(true)
	log.Info("shutting down; answering requests in flight")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	if err := webhookSrv.Shutdown(shutdownCtx); err != nil {
		log.Warn("webhook server shutdown", slog.Any("error", err))
		webhookSrv.Close()
	}
	if err := probeSrv.Shutdown(shutdownCtx); err != nil {
		probeSrv.Close()
	}
	wg.Wait()
	log.Info("stopped")
	return runErr
}

// probeMux serves /healthz (the process answers), /readyz (it can answer
// admission requests) and /metrics.
func probeMux(o Options, stopping *atomic.Bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		var problems []string
		if stopping.Load() {
			problems = append(problems, "shutting down")
		}
		if o.Store.Load() == nil {
			problems = append(problems, "no config loaded yet")
		}
		if err := o.Certs.Ready(); err != nil {
			problems = append(problems, err.Error())
		}
		for _, f := range o.Ready {
			if err := f(); err != nil {
				problems = append(problems, err.Error())
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if len(problems) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(strings.Join(problems, "\n") + "\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	if o.Gatherer != nil {
		mux.Handle("/metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	}
	return mux
}
