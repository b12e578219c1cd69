//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
)

// These tests run `detour serve` with self-managed certificates (--cert-secret) the way
// deploy/detour.yaml does, but out of the cluster: --kubeconfig with the identity of
// detour's ServiceAccount (impersonated), so the RBAC of deploy/detour.yaml is what they
// get, and a webhook configuration named like the installed one that calls detour at
// https://127.0.0.1:PORT (--cert-extra-hosts puts 127.0.0.1 in the certificate). They are
// sequential: they share the Secret and the webhook configuration the manifest names.

// certDetour is a `detour serve` managing its certificate through the apiserver.
type certDetour struct {
	addr     string // host:port of the webhook
	probeURL string // http://host:port of the probe listener
	proc     *process
}

// certSetup applies deploy/detour.yaml (for its namespace and RBAC), removes the certificate
// Secret, and registers the webhook configuration "detour" for url with no caBundle, Fail,
// and an object selector that only this test's Pods match. It returns a kubeconfig that
// acts as detour's ServiceAccount, and the webhook.
func certSetup(t *testing.T, url string) (kubeconfig string, w *webhook) {
	t.Helper()
	ensureInstallNamespace(t)
	applyInstall(t)
	deleteInstallWebhook(t)
	t.Cleanup(func() { deleteInstallWebhook(t) })
	err := cluster.client.CoreV1().Secrets(installNamespace).Delete(t.Context(), installSecret, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}

	w = &webhook{name: installName, selector: "w" + nextID()}
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	timeout := int32(5)
	_, err = cluster.client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(t.Context(), &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: installName},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         "pods.detour.dev",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
			ObjectSelector:          &metav1.LabelSelector{MatchLabels: map[string]string{webhookSelectorLabel: w.selector}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating MutatingWebhookConfiguration %s: %v", installName, err)
	}

	raw, err := clientcmd.LoadFromFile(cluster.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, user := range raw.AuthInfos {
		user.Impersonate = installServiceAcc
	}
	kubeconfig = filepath.Join(t.TempDir(), "detour-sa.kubeconfig")
	if err := clientcmd.WriteToFile(*raw, kubeconfig); err != nil {
		t.Fatal(err)
	}
	return kubeconfig, w
}

// startCertDetour starts `detour serve` with --cert-secret on the given webhook port and
// does not wait for it: callers start several at once, then wait.
func startCertDetour(t *testing.T, kubeconfig string, port int, args ...string) *certDetour {
	t.Helper()
	bin := os.Getenv("DETOUR_BIN")
	if bin == "" {
		t.Skip("DETOUR_BIN is not set: build detour with `go build ./cmd/detour` and point DETOUR_BIN at it (test/e2e/run.sh does both)")
	}
	probe, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	d := &certDetour{
		addr:     "127.0.0.1:" + strconv.Itoa(port),
		probeURL: "http://127.0.0.1:" + strconv.Itoa(probe[0]),
	}
	cmd := exec.Command(bin, append([]string{"serve",
		"--kubeconfig", kubeconfig,
		"--cert-secret", installNamespace + "/" + installSecret,
		"--webhook-config-name", installName,
		"--cert-extra-hosts", "127.0.0.1",
		"--listen", d.addr,
		"--probe-listen", strings.TrimPrefix(d.probeURL, "http://"),
	}, args...)...)
	cmd.Env = environWithout("DETOUR_CONFIG", "POD_NAMESPACE", "KUBECONFIG")
	if d.proc, err = startProcess("detour", logPath(t, "detour"), cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.proc.stop(stopGrace)
		if t.Failed() {
			t.Logf("detour log %s (last lines):\n%s", d.proc.logPath, tail(d.proc.logPath, 40))
		}
	})
	return d
}

func (d *certDetour) waitReady(t *testing.T) {
	t.Helper()
	if err := d.proc.waitReady(detourReadyTimeout, func(ctx context.Context) error {
		return httpOK(ctx, http.DefaultClient, d.probeURL+"/readyz")
	}); err != nil {
		t.Fatal(err)
	}
}

// servedCert does a TLS handshake with detour and returns the certificate it presents,
// unverified: callers verify it against what they mean to.
func (d *certDetour) servedCert(ctx context.Context) (*x509.Certificate, error) {
	dialer := &tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}}
	conn, err := dialer.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
}

// logCount counts the lines of detour's JSON log whose msg is msg.
func (d *certDetour) logCount(t *testing.T, msg string) int {
	t.Helper()
	f, err := os.Open(d.proc.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct{ Msg string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == msg {
			n++
		}
	}
	return n
}

// published returns the caBundle of the webhook configuration "detour", failing the test if
// its webhooks disagree.
func published(t *testing.T, ctx context.Context) *x509.CertPool {
	t.Helper()
	cfg, err := cluster.client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, installName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	for i, w := range cfg.Webhooks {
		if !bytes.Equal(w.ClientConfig.CABundle, cfg.Webhooks[0].ClientConfig.CABundle) {
			t.Errorf("webhook %d has another caBundle than webhook 0", i)
		}
		if !pool.AppendCertsFromPEM(w.ClientConfig.CABundle) {
			t.Fatalf("webhook %s has no usable caBundle: %q", w.Name, w.ClientConfig.CABundle)
		}
	}
	return pool
}

func verify(cert *x509.Certificate, roots *x509.CertPool, host string) error {
	_, err := cert.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}

func TestCertsTwoReplicasBootstrappingAtOnceShareOneCertificate(t *testing.T) {
	ports, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, w := certSetup(t, fmt.Sprintf("https://127.0.0.1:%d/mutate", ports[0]))
	a := startCertDetour(t, kubeconfig, ports[0])
	b := startCertDetour(t, kubeconfig, ports[1])
	a.waitReady(t)
	b.waitReady(t)

	sec, err := cluster.client.CoreV1().Secrets(installNamespace).Get(t.Context(), installSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the certificate Secret: %v", err)
	}
	if sec.Type != "kubernetes.io/tls" {
		t.Errorf("Secret type %q, want kubernetes.io/tls", sec.Type)
	}
	for _, k := range []string{"tls.crt", "tls.key", "ca.crt", "ca.key"} {
		if len(sec.Data[k]) == 0 {
			t.Errorf("Secret has no %s", k)
		}
	}
	stored, err := tls.X509KeyPair(sec.Data["tls.crt"], sec.Data["tls.key"])
	if err != nil {
		t.Fatalf("Secret's tls.crt/tls.key: %v", err)
	}
	leaf, _ := x509.ParseCertificate(stored.Certificate[0])
	if got, want := sec.Annotations["detour.dev/not-after"], leaf.NotAfter.UTC().Format(time.RFC3339); got != want {
		t.Errorf("annotation detour.dev/not-after = %q, want %q", got, want)
	}

	// Both replicas serve the Secret's certificate, and the published caBundle verifies it
	// for the Service's name as well as for the loopback address the apiserver dials here.
	roots := published(t, t.Context())
	for name, d := range map[string]*certDetour{"a": a, "b": b} {
		got, err := d.servedCert(t.Context())
		if err != nil {
			t.Fatalf("replica %s: %v", name, err)
		}
		if !bytes.Equal(got.Raw, leaf.Raw) {
			t.Errorf("replica %s serves serial %v, the Secret holds %v", name, got.SerialNumber, leaf.SerialNumber)
		}
		for _, host := range []string{"detour.detour-system.svc", "127.0.0.1"} {
			if err := verify(got, roots, host); err != nil {
				t.Errorf("replica %s's certificate for %s against the caBundle: %v", name, host, err)
			}
		}
	}

	// The apiserver trusts it: with failurePolicy Fail, the Pod is only stored rewritten if
	// the TLS handshake with detour succeeded.
	waitRewrites(t, w, "default")

	// A replica restarting later adopts the Secret and never rewrites a valid one.
	rv := sec.ResourceVersion
	a.proc.stop(stopGrace)
	a2 := startCertDetour(t, kubeconfig, ports[0])
	a2.waitReady(t)
	if got, err := a2.servedCert(t.Context()); err != nil || !bytes.Equal(got.Raw, leaf.Raw) {
		t.Errorf("the restarted replica serves another certificate (err %v)", err)
	}
	sec, err = cluster.client.CoreV1().Secrets(installNamespace).Get(t.Context(), installSecret, metav1.GetOptions{})
	if err != nil || sec.ResourceVersion != rv {
		t.Errorf("the Secret changed when a replica restarted: resourceVersion %s -> %v (err %v)", rv, sec.ResourceVersion, err)
	}

	// Stopped, every replica has flushed its log.
	created := 0
	for _, d := range []*certDetour{a, b, a2} {
		d.proc.stop(stopGrace)
		created += d.logCount(t, "created certificate Secret")
	}
	if created != 1 {
		t.Errorf("%d replicas say they created the Secret, want exactly 1", created)
	}
}

// waitRewrites waits until a dry-run Pod through w comes back rewritten.
func waitRewrites(t *testing.T, w *webhook, namespace string) {
	t.Helper()
	var got string
	var err error
	start := time.Now()
	for time.Since(start) < webhookActiveTimeout {
		if got, err = w.dryRunImage(t.Context(), namespace, nginx); err == nil && got == nginxRewritten {
			return
		}
		time.Sleep(pollInterval)
	}
	t.Fatalf("a dry-run Pod with %s through the webhook stored %q (err %v), want %q", nginx, got, err, nginxRewritten)
}

// TestCertsRotateUnderAdmissionLoadWithoutAFailedRequest forces lifetimes of seconds, so
// that within the run the serving certificate is renewed several times and the CA once
// (with its rollover: both CAs in the caBundle, then the serving certificate switched, then
// the old CA dropped), while Pods are created through the apiserver without pause. With
// failurePolicy Fail, one failed handshake would fail a request.
func TestCertsRotateUnderAdmissionLoadWithoutAFailedRequest(t *testing.T) {
	const (
		loadDuration = 50 * time.Second // the CA renews at ~38 s, the old one expires at ~60 s
		maxRequests  = 20000            // a bound only; about 80 requests/s go through on two cores
		workers      = 4
	)
	short := []string{
		"--cert-lifetime", "15s", // renewed about every 10 s
		"--ca-lifetime", "60s",
		"--ca-propagation", "3s",
		"--cert-poll-interval", "1s",
	}
	ports, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, w := certSetup(t, fmt.Sprintf("https://127.0.0.1:%d/mutate", ports[0]))
	a := startCertDetour(t, kubeconfig, ports[0], short...)
	b := startCertDetour(t, kubeconfig, ports[1], short...) // a second replica, not called
	a.waitReady(t)
	b.waitReady(t)
	ns := newNamespace(t, "rotation-")
	waitRewrites(t, w, ns)

	ctx, cancel := context.WithTimeout(t.Context(), loadDuration)
	defer cancel()
	var sent, failed atomic.Int64
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	var loadEnd atomic.Int64 // unix nanoseconds of the last request's end
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { loadEnd.Store(time.Now().UnixNano()) }()
			for ctx.Err() == nil && sent.Add(1) <= maxRequests {
				got, err := w.dryRunImage(context.Background(), ns, nginx)
				if err == nil && got == nginxRewritten {
					continue
				}
				failed.Add(1)
				mu.Lock()
				if len(failures) < 10 {
					failures = append(failures, fmt.Sprintf("%s: stored %q, err %v", time.Now().Format(time.TimeOnly), got, err))
				}
				mu.Unlock()
			}
		}()
	}

	// Meanwhile, handshake with the called replica every 200 ms: record what it serves, and
	// check it against the caBundle the apiserver has at that moment.
	serials := map[string]bool{}
	issuers := map[string]bool{}
	var newCASeen time.Time // when a certificate from a second CA was first served
	probes := 0
	for tick := time.NewTicker(200 * time.Millisecond); ctx.Err() == nil; <-tick.C {
		probeCtx, cancelProbe := context.WithTimeout(context.Background(), 5*time.Second)
		cert, err := a.servedCert(probeCtx)
		cancelProbe()
		if err != nil {
			t.Errorf("handshake with detour: %v", err)
			break
		}
		probes++
		serials[cert.SerialNumber.String()] = true
		if !issuers[string(cert.AuthorityKeyId)] && len(issuers) == 1 {
			newCASeen = time.Now()
		}
		issuers[string(cert.AuthorityKeyId)] = true
		if err := verify(cert, published(t, context.Background()), "127.0.0.1"); err != nil {
			t.Errorf("served certificate %v does not verify against the published caBundle: %v", cert.SerialNumber, err)
		}
	}
	wg.Wait()

	n := min(sent.Load(), maxRequests)
	end := time.Unix(0, loadEnd.Load())
	t.Logf("%d admission requests in %v (%d failed); %d handshakes saw %d serving certificates from %d CAs",
		n, end.Sub(start).Round(time.Millisecond), failed.Load(), probes, len(serials), len(issuers))
	if newCASeen.IsZero() || !end.After(newCASeen) {
		t.Errorf("the load ended at %v, before a certificate from the renewed CA was served (%v): it did not cover the CA rollover",
			end.Format(time.TimeOnly), newCASeen.Format(time.TimeOnly))
	}
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed during rotation; first ones:\n%s", failed.Load(), n, strings.Join(failures, "\n"))
	}
	if len(serials) < 3 {
		t.Errorf("the served certificate changed %d times in %v, want at least 2 renewals", len(serials)-1, loadDuration)
	}
	if len(issuers) < 2 {
		t.Errorf("served certificates came from %d CA(s), want the CA renewed too", len(issuers))
	}

	// The replica nobody calls follows the Secret by polling it.
	start = time.Now()
	for {
		sec, err := cluster.client.CoreV1().Secrets(installNamespace).Get(t.Context(), installSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.servedCert(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if want, err := tls.X509KeyPair(sec.Data["tls.crt"], sec.Data["tls.key"]); err == nil && bytes.Equal(want.Certificate[0], got.Raw) {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the second replica still serves %v, not the Secret's certificate", got.SerialNumber)
		}
		time.Sleep(pollInterval)
	}
}
