package cli

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/detourhq/detour/internal/admission"
	"github.com/detourhq/detour/internal/config"
	"github.com/detourhq/detour/internal/jsonlog"
	"github.com/detourhq/detour/internal/kube"
	"github.com/detourhq/detour/internal/registry"
	"github.com/detourhq/detour/internal/webhook"
)

// defaultNamespace is the webhook's own namespace when neither --namespace
// nor POD_NAMESPACE says otherwise; it matches the install manifests.
const defaultNamespace = "detour-system"

// The registry's Checker settles cached chains in one call on the admission
// hot path.
var _ admission.ChainCachedChecker = (*registry.Checker)(nil)

// serveGCPercent is the garbage collector's GOGC for `detour serve` unless
// the GOGC environment variable sets one. The webhook's live heap is about
// 1 MB, so the collector works at its 4 MB minimum goal and, under load,
// runs some twenty times a second, mostly for net/http's own per-request
// garbage; at 150 the goal is 6 MB, a third fewer cycles, for about 2 MB more
// resident memory (hack/load/run.sh and BENCHMARKS.md have the figures).
const serveGCPercent = 150

// serveFlags are the flags of `detour serve`.
type serveFlags struct {
	config, configMap, kubeconfig string
	listen, probeListen           string
	tlsCert, tlsKey               string
	namespace                     string
	logLevel                      string
}

func runServe(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "serve", "[--config F | --configmap NAMESPACE/NAME] [--listen :8443] [--probe-listen :8080] [--tls-cert F --tls-key F | --cert-secret NAME --webhook-config-name NAME]")
	var f serveFlags
	fs.StringVar(&f.config, "config", env.Getenv("DETOUR_CONFIG"), "config file, reloaded when it changes (default: DETOUR_CONFIG, else the embedded default)")
	fs.StringVar(&f.configMap, "configmap", "", "read and watch the config in this ConfigMap's key "+webhook.ConfigMapKey+" through the API, as NAMESPACE/NAME")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig for --configmap and --cert-secret (default: the in-cluster service account)")
	fs.StringVar(&f.listen, "listen", ":8443", "HTTPS address of the webhook (path /mutate)")
	fs.StringVar(&f.probeListen, "probe-listen", ":8080", "HTTP address of /healthz, /readyz and /metrics")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate file, reloaded when it changes (default: a self-signed certificate made at start)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM key file of --tls-cert")
	fs.StringVar(&f.namespace, "namespace", "", "the webhook's own namespace, whose Pods are never changed (default: POD_NAMESPACE, else "+defaultNamespace+")")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error; debug adds a line per Pod left alone")
	certSecret := addCertFlags(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return usageError("serve takes no arguments, got %q", pos)
	case (f.tlsCert == "") != (f.tlsKey == ""):
		return usageError("give both --tls-cert and --tls-key, or neither")
	case f.config != "" && f.configMap != "":
		return usageError("give --config or --configmap, not both")
	}
	if err := certSecret.check(f.tlsCert != ""); err != nil {
		return err
	}
	if f.namespace == "" {
		f.namespace = env.Getenv("POD_NAMESPACE")
	}
	if f.namespace == "" {
		f.namespace = defaultNamespace
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return usageError("--log-level %q: want debug, info, warn or error", f.logLevel)
	}
	if env.Getenv("GOGC") == "" {
		debug.SetGCPercent(serveGCPercent)
	}
	// Lines are batched: one write per 100 ms instead of one per Pod.
	logOut := webhook.NewLogWriter(env.Stderr)
	defer logOut.Flush() // runs last, after the watchers have stopped
	// jsonlog writes what slog.JSONHandler writes, in half the time per line.
	log := slog.New(jsonlog.New(logOut, &slog.HandlerOptions{Level: level}))
	klog.SetSlogLogger(log.With(slog.String("component", "client-go")))

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var background sync.WaitGroup
	defer background.Wait()
	defer cancel() // runs first: stop the watchers, then wait for them
	background.Go(func() { logOut.Run(ctx) })

	certs, err := serveCerts(ctx, f, certSecret, env, log, &background)
	if err != nil {
		return err
	}
	metrics := webhook.NewMetrics(reg, certs)
	checkMetrics, err := registry.NewPrometheus(reg)
	if err != nil {
		return err
	}
	checkers := &checkers{metrics: checkMetrics, log: log}
	defer checkers.close() // after the server and the watchers have stopped
	store := webhook.NewStore(webhook.StoreOptions{
		OwnNamespace: f.namespace,
		Metrics:      metrics,
		Log:          log,
		NewChecker:   checkers.forConfig,
	})

	switch {
	case f.configMap != "":
		ns, name, ok := strings.Cut(f.configMap, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return usageError("--configmap %q: want NAMESPACE/NAME", f.configMap)
		}
		client, err := apiClient(f.kubeconfig)
		if err != nil {
			return err
		}
		log.Info("reading config from a ConfigMap", slog.String("configmap", f.configMap), slog.String("key", webhook.ConfigMapKey))
		background.Go(func() { webhook.WatchConfigMap(ctx, client, ns, name, store, log) })
	case f.config != "":
		if err := webhook.LoadFile(store, f.config); err != nil {
			return err
		}
		background.Go(func() { webhook.WatchFile(ctx, store, f.config, log) })
	default:
		if err := store.ApplyConfig(config.Default()); err != nil {
			return err
		}
	}

	return webhook.Serve(ctx, webhook.Options{
		Listen:      f.listen,
		ProbeListen: f.probeListen,
		Certs:       certs,
		Store:       store,
		Metrics:     metrics,
		Gatherer:    reg,
		Log:         log,
	})
}

// serveCerts picks the certificate source: a Secret detour manages itself
// (--cert-secret, serve_incluster.go), the files, watched until ctx ends, or
// a self-signed certificate made now and logged. Each is a
// webhook.CertSource; another source is one more case here.
func serveCerts(ctx context.Context, f serveFlags, secret *certFlags, env *Env, log *slog.Logger, background *sync.WaitGroup) (webhook.CertSource, error) {
	switch {
	case secret.enabled():
		get, ready, expiry, err := inClusterCertSource(ctx, f.kubeconfig, secret, env.Getenv, log)
		if err != nil {
			return nil, err
		}
		return webhook.CertFuncs{Get: get, ReadyC: ready, ExpiryFunc: expiry}, nil
	case f.tlsCert != "":
		fc, err := webhook.LoadFileCert(f.tlsCert, f.tlsKey, log)
		if err != nil {
			return nil, err
		}
		leaf := fc.Certificate().Leaf
		log.Info("serving certificate loaded", slog.String("cert", f.tlsCert), slog.String("subject", leaf.Subject.String()),
			slog.Time("not_after", leaf.NotAfter))
		background.Go(func() { fc.Run(ctx) })
		return fc, nil
	}
	hosts := webhook.SelfSignedHosts()
	cert, certPEM, err := webhook.SelfSigned(hosts, time.Now())
	if err != nil {
		return nil, fmt.Errorf("making a self-signed certificate: %w", err)
	}
	log.Info("no --tls-cert: serving a self-signed certificate made in memory; give it to the apiserver as caBundle",
		slog.Any("hosts", hosts), slog.Time("not_after", cert.Leaf.NotAfter), slog.String("certificate", string(certPEM)))
	return webhook.NewStaticCert(cert), nil
}

// checkerRetireDelay is how long the availability Checker of an old config
// stays open after a reload: longer than any request still using it can
// run (WriteTimeout).
const checkerRetireDelay = time.Minute

// checkers makes the availability Checker of each config (SPEC §6). Its
// cache and connections are worth keeping, so a reload that leaves the
// check settings alone keeps the Checker in use; one that changes them gets
// a new Checker, and the old one is closed a minute later.
type checkers struct {
	metrics registry.Metrics
	log     *slog.Logger

	mu       sync.Mutex
	key      string
	cur      *registry.Checker
	retiring []*registry.Checker // closed by a timer, or by close
}

// forConfig is webhook.StoreOptions.NewChecker.
func (c *checkers) forConfig(cfg *config.Config) admission.Checker {
	if !cfg.Check.Enabled {
		return nil
	}
	key := fmt.Sprint(cfg.Check.Timeout, cfg.Check.TTL, cfg.InsecureRegistries)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil && c.key == key {
		return c.cur
	}
	if old := c.cur; old != nil {
		c.retiring = append(c.retiring, old)
		time.AfterFunc(checkerRetireDelay, old.Close)
	}
	client := registry.NewClient(registry.ClientOptions{Timeout: cfg.Check.Timeout, Insecure: cfg.InsecureRegistries, Logger: c.log})
	c.cur = registry.NewChecker(client, registry.CheckerOptions{TTL: cfg.Check.TTL, Metrics: c.metrics, Logger: c.log})
	c.key = key
	return c.cur
}

// close closes every Checker made.
func (c *checkers) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Close is idempotent: a retired Checker whose timer fired is closed
	// already, and its timer may still fire after this.
	for _, old := range c.retiring {
		old.Close()
	}
	if c.cur != nil {
		c.cur.Close()
	}
}

// apiClient makes the API client from a kubeconfig file, or in-cluster.
func apiClient(kubeconfig string) (*kube.Client, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("reading kubeconfig %s: %w", kubeconfig, err)
		}
	} else if cfg, err = rest.InClusterConfig(); err != nil {
		return nil, fmt.Errorf("--configmap outside a cluster needs --kubeconfig: %w", err)
	}
	return kube.New(cfg)
}
