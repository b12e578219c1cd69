package certs

import (
	"strings"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/detourhq/detour/internal/kube"
)

// The Manager's work against an apiserver is tested in test/e2e (certs_e2e_test.go); these
// are the parts that need none.

func TestNewRefusesIncompleteOptions(t *testing.T) {
	client := newClient(t) // never used: New makes no request
	ok := Options{Client: client, Namespace: "detour-system", SecretName: "detour-tls", WebhookConfigName: "detour", Policy: Policy{Hosts: hosts}}
	if _, err := New(ok); err != nil {
		t.Fatalf("complete options: %v", err)
	}
	for name, tc := range map[string]struct {
		edit func(*Options)
		want string
	}{
		"no client":         {func(o *Options) { o.Client = nil }, "client"},
		"no secret name":    {func(o *Options) { o.SecretName = "" }, "Secret"},
		"no namespace":      {func(o *Options) { o.Namespace = "" }, "Secret"},
		"no webhook config": {func(o *Options) { o.WebhookConfigName = "" }, "MutatingWebhookConfiguration"},
		"no hosts":          {func(o *Options) { o.Policy.Hosts = nil }, "host"},
		"negative poll":     {func(o *Options) { o.PollInterval = -1 }, "poll"},
	} {
		o := ok
		tc.edit(&o)
		if _, err := New(o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one mentioning %q", name, err, tc.want)
		}
	}
}

func TestBeforeTheFirstSyncNothingIsServedAndNotReady(t *testing.T) {
	m, err := New(Options{Client: newClient(t), Namespace: "n", SecretName: "s", WebhookConfigName: "w", Policy: Policy{Hosts: hosts}})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := m.GetCertificate(nil); c != nil || err == nil {
		t.Errorf("GetCertificate = %v, %v; want no certificate and an error", c, err)
	}
	if !m.Expiry().IsZero() {
		t.Errorf("Expiry = %v, want zero", m.Expiry())
	}
	select {
	case <-m.Ready():
		t.Error("Ready is closed before any sync")
	default:
	}

	b, _, err := Policy{Hosts: hosts}.Plan(nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	m.serve(b)
	<-m.Ready()
	c, err := m.GetCertificate(nil)
	if err != nil || c.Leaf != b.Serving.Cert || !m.Expiry().Equal(b.Serving.Cert.NotAfter) {
		t.Errorf("after serve: certificate %v, err %v, expiry %v; want the bundle's", c, err, m.Expiry())
	}
}

// newClient is a client of an apiserver that does not exist; New never calls it.
func newClient(t *testing.T) *kube.Client {
	t.Helper()
	c, err := kube.New(&rest.Config{Host: "https://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
