package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/detourhq/detour/internal/kube"
)

// Timing of Manager.Run.
const (
	// DefaultPollInterval is how often a replica re-reads the Secret and the webhook
	// configuration besides its own renewal times: it bounds how long a replica serves a
	// certificate another replica has already replaced (harmless, the old one is still valid
	// for a third of its life) and how long a caBundle changed by hand stays wrong.
	DefaultPollInterval = time.Minute
	// retryMin and retryMax bound the backoff after a failed sync (apiserver unreachable,
	// RBAC missing, webhook configuration not created yet).
	retryMin = time.Second
	retryMax = time.Minute
	// minWait keeps a clock oddity from turning the loop into a busy loop.
	minWait = 100 * time.Millisecond
	// maxAttempts bounds the re-read-and-retry loops on Conflict and AlreadyExists; each
	// attempt means another writer made progress, so a handful is plenty.
	maxAttempts = 8
	// fieldManager names detour in the objects' managedFields.
	fieldManager = "detour"
)

// Options configure a Manager.
type Options struct {
	// Client reaches the apiserver. It needs get, create and update on the Secret and get
	// and patch on the MutatingWebhookConfiguration (deploy/detour.yaml grants exactly that).
	Client *kube.Client
	// Namespace and SecretName name the Secret holding the certificates.
	Namespace, SecretName string
	// WebhookConfigName is the MutatingWebhookConfiguration whose caBundle is kept in step.
	WebhookConfigName string
	// Policy says which certificates to keep; Policy.Hosts is required.
	Policy Policy
	// PollInterval defaults to DefaultPollInterval.
	PollInterval time.Duration
	// Logger receives what the Manager does; nil discards it.
	Logger *slog.Logger
}

// Manager keeps the certificate Secret and the caBundle current and serves the certificate.
// Make one with New, start Run, wait for Ready, then hand GetCertificate to a tls.Config.
type Manager struct {
	opts Options
	log  *slog.Logger

	cert      atomic.Pointer[tls.Certificate]
	ready     chan struct{}
	readyOnce sync.Once
}

// New checks opts and returns a Manager that has not touched the apiserver yet.
func New(opts Options) (*Manager, error) {
	var errs []error
	if opts.Client == nil {
		errs = append(errs, errors.New("no Kubernetes client"))
	}
	if opts.Namespace == "" || opts.SecretName == "" {
		errs = append(errs, errors.New("the Secret's namespace and name are required"))
	}
	if opts.WebhookConfigName == "" {
		errs = append(errs, errors.New("the MutatingWebhookConfiguration's name is required"))
	}
	if err := opts.Policy.Validate(); err != nil {
		errs = append(errs, err)
	}
	if opts.PollInterval < 0 {
		errs = append(errs, fmt.Errorf("poll interval %v is negative", opts.PollInterval))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("certificate manager: %w", err)
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = DefaultPollInterval
	}
	opts.Policy = opts.Policy.withDefaults()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("secret", opts.Namespace+"/"+opts.SecretName, "webhookConfiguration", opts.WebhookConfigName)
	return &Manager{opts: opts, log: log, ready: make(chan struct{})}, nil
}

// Ready is closed once a certificate is served whose CA is in the webhook configuration's
// caBundle.
func (m *Manager) Ready() <-chan struct{} { return m.ready }

// GetCertificate returns the current serving certificate; it is a tls.Config.GetCertificate.
// Before Ready it returns an error, so a handshake fails rather than presenting nothing.
func (m *Manager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := m.cert.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("no serving certificate yet: the certificate Secret is not synced")
}

// Expiry is the NotAfter of the certificate being served, zero before Ready. It is meant for
// a gauge the caller registers.
func (m *Manager) Expiry() time.Time {
	if c := m.cert.Load(); c != nil {
		return c.Leaf.NotAfter
	}
	return time.Time{}
}

// Run syncs until ctx is done, then returns nil. A failed sync is logged and retried with
// backoff; it never ends Run, so a replica that starts before the apiserver or before its
// webhook configuration exists recovers by itself (and stays unready meanwhile).
func (m *Manager) Run(ctx context.Context) error {
	backoff := retryMin
	for {
		next, err := m.Sync(ctx)
		var wait time.Duration
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			m.log.Error("certificate sync failed", "err", err, "retryIn", backoff)
			wait, backoff = backoff, min(backoff*2, retryMax)
		} else {
			backoff = retryMin
			wait = max(min(time.Until(next), m.opts.PollInterval), minWait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Sync makes one pass: brings the Secret up to date (creating or renewing as Policy.Plan
// says), sets the caBundle to its CAs, and serves its certificate. It returns when the next
// pass is due by the certificates' own schedule.
func (m *Manager) Sync(ctx context.Context) (next time.Time, err error) {
	for range maxAttempts {
		b, rv, err := m.syncSecret(ctx)
		if err != nil {
			return time.Time{}, err
		}
		patched, err := m.publish(ctx, b.CABundle())
		if err != nil {
			return time.Time{}, err
		}
		if patched {
			// A replica that read the Secret just before another one renewed the CA may have
			// published the old caBundle over the new one. Whoever patched checks that the
			// Secret it published is still the current one, and publishes again otherwise.
			sec, err := m.opts.Client.GetSecret(ctx, m.opts.Namespace, m.opts.SecretName)
			if err != nil {
				return time.Time{}, fmt.Errorf("re-reading Secret %s/%s: %w", m.opts.Namespace, m.opts.SecretName, err)
			}
			if sec.ResourceVersion != rv {
				continue
			}
		}
		m.serve(b)
		return m.opts.Policy.NextCheck(b), nil
	}
	return time.Time{}, fmt.Errorf("syncing Secret %s/%s: it kept changing during %d attempts", m.opts.Namespace, m.opts.SecretName, maxAttempts)
}

// syncSecret returns the bundle the Secret holds after making it current, and the Secret's
// resourceVersion. Creation races end with AlreadyExists for all but one replica; updates
// race on resourceVersion. Losers re-read and adopt what the winner wrote.
func (m *Manager) syncSecret(ctx context.Context) (*Bundle, string, error) {
	ref := m.opts.Namespace + "/" + m.opts.SecretName
	for range maxAttempts {
		now := time.Now()
		sec, err := m.opts.Client.GetSecret(ctx, m.opts.Namespace, m.opts.SecretName)
		if apierrors.IsNotFound(err) {
			b, reasons, err := m.opts.Policy.Plan(nil, now)
			if err != nil {
				return nil, "", err
			}
			data, annotations := b.Encode()
			created, err := m.opts.Client.CreateSecret(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{
					Name:        m.opts.SecretName,
					Namespace:   m.opts.Namespace,
					Labels:      map[string]string{"app.kubernetes.io/name": "detour", "app.kubernetes.io/managed-by": "detour"},
					Annotations: annotations,
				},
				Type: corev1.SecretTypeTLS,
				Data: data,
			}, fieldManager)
			if apierrors.IsAlreadyExists(err) {
				m.log.Info("another replica created the certificate Secret first; adopting it")
				continue
			}
			if err != nil {
				return nil, "", fmt.Errorf("creating Secret %s: %w", ref, err)
			}
			m.log.Info("created certificate Secret", "reasons", reasons, "serial", b.Serving.Cert.SerialNumber.String(), "notAfter", stamp(b.Serving.Cert.NotAfter))
			return b, created.ResourceVersion, nil
		}
		if err != nil {
			return nil, "", fmt.Errorf("reading Secret %s: %w", ref, err)
		}

		cur, err := Decode(sec.Data, sec.Annotations)
		if err != nil {
			m.log.Warn("certificate Secret is unusable; replacing its contents", "err", err)
			cur = nil
		}
		b, reasons, err := m.opts.Policy.Plan(cur, now)
		if err != nil {
			return nil, "", err
		}
		if len(reasons) == 0 {
			return b, sec.ResourceVersion, nil
		}
		upd := sec.DeepCopy() // keeps its resourceVersion: the update is conditional on it
		data, annotations := b.Encode()
		if upd.Data == nil {
			upd.Data = map[string][]byte{}
		}
		if upd.Annotations == nil {
			upd.Annotations = map[string]string{}
		}
		maps.Copy(upd.Data, data)
		maps.Copy(upd.Annotations, annotations)
		updated, err := m.opts.Client.UpdateSecret(ctx, upd, fieldManager)
		if apierrors.IsConflict(err) {
			m.log.Info("another replica updated the certificate Secret first; re-reading it")
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("updating Secret %s: %w", ref, err)
		}
		m.log.Info("updated certificate Secret", "reasons", reasons, "serial", b.Serving.Cert.SerialNumber.String(), "notAfter", stamp(b.Serving.Cert.NotAfter), "caNotAfter", stamp(b.CA.Cert.NotAfter))
		return b, updated.ResourceVersion, nil
	}
	return nil, "", fmt.Errorf("syncing Secret %s: still conflicting after %d attempts", ref, maxAttempts)
}

// publish sets the caBundle of every webhook in the configuration to bundle, and reports
// whether it had to change anything. The patch carries the resourceVersion it was computed
// from, so a concurrent change to the configuration makes it retry instead of clobbering.
func (m *Manager) publish(ctx context.Context, bundle []byte) (bool, error) {
	name := m.opts.WebhookConfigName
	for range maxAttempts {
		cfg, err := m.opts.Client.GetMutatingWebhookConfiguration(ctx, name)
		if err != nil {
			return false, fmt.Errorf("reading MutatingWebhookConfiguration %s: %w", name, err)
		}
		if len(cfg.Webhooks) == 0 {
			return false, fmt.Errorf("MutatingWebhookConfiguration %s has no webhooks to set a caBundle on", name)
		}
		type clientConfig struct {
			CABundle []byte `json:"caBundle"`
		}
		type webhook struct {
			Name         string       `json:"name"`
			ClientConfig clientConfig `json:"clientConfig"`
		}
		var stale []webhook
		for _, w := range cfg.Webhooks {
			if !bytes.Equal(w.ClientConfig.CABundle, bundle) {
				stale = append(stale, webhook{Name: w.Name, ClientConfig: clientConfig{CABundle: bundle}})
			}
		}
		if len(stale) == 0 {
			return false, nil
		}
		// A strategic merge patch: webhooks merge by name, so only the caBundles change.
		patch, err := json.Marshal(map[string]any{
			"metadata": map[string]string{"resourceVersion": cfg.ResourceVersion},
			"webhooks": stale,
		})
		if err != nil {
			return false, fmt.Errorf("encoding caBundle patch for %s: %w", name, err)
		}
		_, err = m.opts.Client.PatchMutatingWebhookConfiguration(ctx, name, types.StrategicMergePatchType, patch, fieldManager)
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("patching the caBundle of MutatingWebhookConfiguration %s: %w", name, err)
		}
		m.log.Info("set caBundle", "webhooks", len(stale), "cas", bytes.Count(bundle, []byte("-----BEGIN CERTIFICATE-----")))
		return true, nil
	}
	return false, fmt.Errorf("patching the caBundle of MutatingWebhookConfiguration %s: still conflicting after %d attempts", name, maxAttempts)
}

// serve switches GetCertificate to b's serving certificate and signals Ready.
func (m *Manager) serve(b *Bundle) {
	next := b.TLSCertificate()
	if prev := m.cert.Load(); prev == nil || !bytes.Equal(prev.Certificate[0], next.Certificate[0]) {
		m.cert.Store(next)
		m.log.Info("serving certificate", "serial", next.Leaf.SerialNumber.String(), "notAfter", stamp(next.Leaf.NotAfter), "renewAt", stamp(RenewAt(next.Leaf)))
	}
	m.readyOnce.Do(func() { close(m.ready) })
}
