package cli

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/detourhq/detour/internal/certs"
	"github.com/detourhq/detour/internal/kube"
)

// serviceAccountNamespaceFile is where kubelet tells a Pod its namespace.
const serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// certFlags are `detour serve`'s flags for self-managed certificates in a cluster: with
// --cert-secret, detour keeps its serving certificate in a Secret and the CA in its
// MutatingWebhookConfiguration's caBundle (package certs), instead of reading --tls-cert.
type certFlags struct {
	secret        string // [NAMESPACE/]NAME
	webhookConfig string
	service       string
	extraHosts    string // comma-separated
	caLifetime    time.Duration
	certLifetime  time.Duration
	caPropagation time.Duration
	pollInterval  time.Duration
}

// addCertFlags registers the certificate flags on fs.
func addCertFlags(fs *flag.FlagSet) *certFlags {
	f := &certFlags{}
	fs.StringVar(&f.secret, "cert-secret", "", "keep the serving certificate in this Secret, [NAMESPACE/]NAME, creating and renewing it (namespace default: POD_NAMESPACE, else the Pod's service account namespace)")
	fs.StringVar(&f.webhookConfig, "webhook-config-name", "", "the MutatingWebhookConfiguration whose caBundle --cert-secret keeps in step (required with --cert-secret)")
	fs.StringVar(&f.service, "service-name", "detour", "the Service in front of detour, in the Secret's namespace: the certificate is for SERVICE.NAMESPACE.svc and its other forms")
	fs.StringVar(&f.extraHosts, "cert-extra-hosts", "", "comma-separated DNS names or IP addresses the certificate covers besides the Service's")
	fs.DurationVar(&f.caLifetime, "ca-lifetime", certs.DefaultCALifetime, "lifetime of a CA made for --cert-secret; renewed at two thirds")
	fs.DurationVar(&f.certLifetime, "cert-lifetime", certs.DefaultServingLifetime, "lifetime of a serving certificate made for --cert-secret; renewed at two thirds")
	fs.DurationVar(&f.caPropagation, "ca-propagation", certs.DefaultCAPropagation, "after a CA renewal, how long the new caBundle has to reach every apiserver before a certificate from the new CA is served")
	fs.DurationVar(&f.pollInterval, "cert-poll-interval", certs.DefaultPollInterval, "how often the Secret and the caBundle are re-read, besides the renewal times")
	return f
}

// enabled reports whether --cert-secret was given.
func (f *certFlags) enabled() bool { return f.secret != "" }

// check reports flag combinations that make no sense. tlsCertGiven is whether --tls-cert or
// --tls-key was given: the two sources of a certificate exclude each other.
func (f *certFlags) check(tlsCertGiven bool) error {
	switch {
	case !f.enabled() && f.webhookConfig != "":
		return usageError("--webhook-config-name needs --cert-secret")
	case !f.enabled():
		return nil
	case tlsCertGiven:
		return usageError("--cert-secret and --tls-cert/--tls-key exclude each other")
	case f.webhookConfig == "":
		return usageError("--cert-secret needs --webhook-config-name: the apiserver must learn the CA")
	}
	return nil
}

// inClusterCertSource starts the certificate manager for --cert-secret in a goroutine that
// ends with ctx. kubeconfig "" means the in-cluster configuration of a Pod. getenv reads
// POD_NAMESPACE. It returns the tls.Config.GetCertificate to serve with, a channel closed
// once a certificate the apiserver trusts is served (until then /readyz must fail), and the
// serving certificate's expiry for the metric. err is a configuration problem: bad flags, no
// cluster configuration. Trouble with the apiserver is not an error here: the manager logs
// it and retries, and ready stays open meanwhile.
func inClusterCertSource(ctx context.Context, kubeconfig string, f *certFlags, getenv func(string) string, log *slog.Logger) (getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), ready <-chan struct{}, expiry func() time.Time, err error) {
	if err := f.check(false); err != nil {
		return nil, nil, nil, err
	}
	namespace, name, err := f.secretRef(getenv)
	if err != nil {
		return nil, nil, nil, err
	}
	hosts := certs.ServiceHosts(f.service, namespace)
	for h := range strings.SplitSeq(f.extraHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	client, err := inClusterClient(kubeconfig)
	if err != nil {
		return nil, nil, nil, err
	}
	m, err := certs.New(certs.Options{
		Client:            client,
		Namespace:         namespace,
		SecretName:        name,
		WebhookConfigName: f.webhookConfig,
		Policy: certs.Policy{
			Hosts:           hosts,
			CALifetime:      f.caLifetime,
			ServingLifetime: f.certLifetime,
			CAPropagation:   f.caPropagation,
		},
		PollInterval: f.pollInterval,
		Logger:       log,
	})
	if err != nil {
		return nil, nil, nil, usageError("%v", err)
	}
	go func() { _ = m.Run(ctx) }()
	return m.GetCertificate, m.Ready(), m.Expiry, nil
}

// secretRef splits --cert-secret, finding the namespace when it is not given.
func (f *certFlags) secretRef(getenv func(string) string) (namespace, name string, err error) {
	namespace, name, ok := strings.Cut(f.secret, "/")
	if !ok {
		namespace, name = "", f.secret
	}
	if name == "" || strings.Contains(name, "/") {
		return "", "", usageError("--cert-secret %q: want NAME or NAMESPACE/NAME", f.secret)
	}
	if namespace == "" {
		namespace = getenv("POD_NAMESPACE")
	}
	if namespace == "" {
		b, err := os.ReadFile(serviceAccountNamespaceFile)
		if err != nil {
			return "", "", usageError("--cert-secret %q: no namespace given, POD_NAMESPACE is unset and %s is unreadable (%v): write NAMESPACE/NAME", f.secret, serviceAccountNamespaceFile, err)
		}
		namespace = strings.TrimSpace(string(b))
	}
	return namespace, name, nil
}

// inClusterClient connects with the kubeconfig file at path, or with the Pod's service
// account when path is "".
func inClusterClient(path string) (*kube.Client, error) {
	var cfg *rest.Config
	var err error
	if path == "" {
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("connecting to the cluster (no --kubeconfig given, and not in a Pod?): %w", err)
		}
	} else if cfg, err = clientcmd.BuildConfigFromFlags("", path); err != nil {
		return nil, fmt.Errorf("loading kubeconfig %s: %w", path, err)
	}
	cfg.UserAgent = "detour"
	client, err := kube.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("making a Kubernetes client: %w", err)
	}
	return client, nil
}
