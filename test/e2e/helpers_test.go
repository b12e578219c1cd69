//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// originalImagesAnnotation is where detour records the images it replaced (SPEC §4).
	originalImagesAnnotation = "detour.dev/original-images"

	// webhookSelectorLabel routes a Pod to one test's webhook. Each registerWebhook call
	// selects the Pods carrying its own value, so tests with different webhooks run in
	// parallel against the one apiserver without seeing each other's mutations.
	webhookSelectorLabel = "e2e.detour.dev/webhook"

	// detourReadyTimeout bounds a `detour serve` start; it does no network I/O to start.
	detourReadyTimeout = 15 * time.Second

	// webhookActiveTimeout bounds the wait for a new MutatingWebhookConfiguration to take
	// effect; the notes measured ~0.2 s.
	webhookActiveTimeout = 15 * time.Second
)

// uniqueID numbers everything the tests name: log files, webhook configurations.
var uniqueID atomic.Int64

func nextID() string { return strconv.FormatInt(uniqueID.Add(1), 10) }

// detour is a running `detour serve`.
type detour struct {
	url      string // the admission endpoint, https://127.0.0.1:PORT/mutate
	caBundle []byte // PEM of the CA that signed its serving certificate
	proc     *process
}

// stop ends detour by PID (SIGTERM, then SIGKILL after a grace period). Tests call it to
// take the webhook away; it also runs at test end.
func (d *detour) stop() { d.proc.stop(stopGrace) }

// startDetour runs the real `detour serve` binary from DETOUR_BIN on free loopback ports,
// with a serving certificate signed by the harness CA, and waits for its /readyz. args are
// appended to the serve flags, e.g. "--config", path. The test is skipped without DETOUR_BIN.
func startDetour(t *testing.T, args ...string) *detour {
	t.Helper()
	bin := os.Getenv("DETOUR_BIN")
	if bin == "" {
		t.Skip("DETOUR_BIN is not set: build detour with `go build ./cmd/detour` and point DETOUR_BIN at it (test/e2e/run.sh does both)")
	}
	ports, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	listen := "127.0.0.1:" + strconv.Itoa(ports[0])
	probeListen := "127.0.0.1:" + strconv.Itoa(ports[1])
	cmd := exec.Command(bin, append([]string{"serve",
		"--listen", listen,
		"--probe-listen", probeListen,
		"--tls-cert", cluster.webhookCert,
		"--tls-key", cluster.webhookKey,
	}, args...)...)
	cmd.Env = environWithout("DETOUR_CONFIG")
	p, err := startProcess("detour", logPath(t, "detour"), cmd)
	if err != nil {
		t.Fatal(err)
	}
	started := false // a failed start already shows the log
	t.Cleanup(func() {
		p.stop(stopGrace)
		if t.Failed() && started {
			t.Logf("detour log %s (last lines):\n%s", p.logPath, tail(p.logPath, 40))
		}
	})
	if err := p.waitReady(detourReadyTimeout, func(ctx context.Context) error {
		return httpOK(ctx, http.DefaultClient, "http://"+probeListen+"/readyz")
	}); err != nil {
		t.Fatal(err)
	}
	started = true
	return &detour{url: "https://" + listen + "/mutate", caBundle: cluster.ca.certPEM, proc: p}
}

// logPath names a log file in the run's log directory after the test.
func logPath(t *testing.T, what string) string {
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	return filepath.Join(cluster.logDir, fmt.Sprintf("%s-%s-%s.log", what, name, nextID()))
}

// webhook is a registered MutatingWebhookConfiguration that only sees Pods made by its pod
// method.
type webhook struct {
	name     string // of the MutatingWebhookConfiguration and of its one webhook
	selector string // value of webhookSelectorLabel this webhook selects
}

// probe is how registerWebhook knows its configuration is in effect: a server-side dry-run
// create of a one-container Pod until the stored image is want.
type probe struct {
	namespace string // where the dry-run Pod is created; "" is "default"
	image     string // the image the Pod asks for
	want      string // the image the webhook makes of it
}

// registerWebhook registers url as a mutating webhook for Pods (CREATE, UPDATE) and
// pods/ephemeralcontainers (UPDATE), the way detour's install manifests do, and waits until
// the apiserver calls it, which p proves. The configuration is deleted at test end.
func registerWebhook(t *testing.T, url string, caBundle []byte, failurePolicy admissionregistrationv1.FailurePolicyType, p probe) *webhook {
	t.Helper()
	w := &webhook{selector: "w" + nextID()}
	w.name = w.selector + ".e2e.detour.dev"
	sideEffects := admissionregistrationv1.SideEffectClassNone
	reinvocation := admissionregistrationv1.IfNeededReinvocationPolicy
	matchPolicy := admissionregistrationv1.Equivalent
	timeout := int32(5)
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: w.name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         w.name,
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caBundle},
			Rules: []admissionregistrationv1.RuleWithOperations{
				{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
				},
				{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods/ephemeralcontainers"}},
				},
			},
			ObjectSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{webhookSelectorLabel: w.selector},
			},
			FailurePolicy:           &failurePolicy,
			SideEffects:             &sideEffects,
			AdmissionReviewVersions: []string{"v1", "v1beta1"},
			ReinvocationPolicy:      &reinvocation,
			MatchPolicy:             &matchPolicy,
			TimeoutSeconds:          &timeout,
		}},
	}
	hooks := cluster.client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := hooks.Create(t.Context(), cfg, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating MutatingWebhookConfiguration %s: %v", w.name, err)
	}
	t.Cleanup(func() {
		// t.Context is already cancelled in cleanups.
		if err := hooks.Delete(context.Background(), w.name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("deleting MutatingWebhookConfiguration %s: %v", w.name, err)
		}
	})

	if p.namespace == "" {
		p.namespace = metav1.NamespaceDefault
	}
	var got string
	var err error
	start := time.Now()
	for time.Since(start) < webhookActiveTimeout {
		if got, err = w.dryRunImage(t.Context(), p.namespace, p.image); err == nil && got == p.want {
			t.Logf("webhook %s in effect after %v", w.name, time.Since(start).Round(time.Millisecond))
			return w
		}
		time.Sleep(pollInterval)
	}
	t.Fatalf("webhook %s at %s not in effect after %v: dry-run Pod with image %q in %s stored %q (want %q), last error: %v",
		w.name, url, webhookActiveTimeout, p.image, p.namespace, got, p.want, err)
	return nil
}

// pod returns a Pod this webhook is called for.
func (w *webhook) pod(name string, containers ...corev1.Container) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:   name,
			Labels: map[string]string{webhookSelectorLabel: w.selector},
		},
		Spec: corev1.PodSpec{Containers: containers},
	}
}

// dryRunImage creates a one-container Pod with --dry-run=server and returns the image the
// apiserver would have stored.
func (w *webhook) dryRunImage(ctx context.Context, namespace, image string) (string, error) {
	pod := w.pod("", ctr("probe", image))
	pod.GenerateName = "probe-"
	got, err := cluster.client.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		return "", err
	}
	return got.Spec.Containers[0].Image, nil
}

func ctr(name, image string) corev1.Container {
	return corev1.Container{Name: name, Image: image}
}

// newNamespace creates a namespace named generateName plus a random suffix. Namespaces are
// not deleted: without kube-controller-manager they would only sit in Terminating, and the
// whole etcd goes at the end of the run.
func newNamespace(t *testing.T, generateName string) string {
	t.Helper()
	ns, err := cluster.client.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: generateName},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace %s*: %v", generateName, err)
	}
	return ns.Name
}

// createPod creates pod in namespace and returns what the apiserver stored.
func createPod(t *testing.T, namespace string, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	got, err := cluster.client.CoreV1().Pods(namespace).Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating Pod %s/%s: %v", namespace, pod.Name, err)
	}
	return got
}

// getPod reads a Pod back, so that assertions are about what etcd holds.
func getPod(t *testing.T, namespace, name string) *corev1.Pod {
	t.Helper()
	got, err := cluster.client.CoreV1().Pods(namespace).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("getting Pod %s/%s: %v", namespace, name, err)
	}
	return got
}

// images maps "containers/NAME", "initContainers/NAME" and "ephemeralContainers/NAME" to
// each container's image: the keys of detour's annotation.
func images(pod *corev1.Pod) map[string]string {
	m := map[string]string{}
	for _, c := range pod.Spec.InitContainers {
		m["initContainers/"+c.Name] = c.Image
	}
	for _, c := range pod.Spec.Containers {
		m["containers/"+c.Name] = c.Image
	}
	for _, c := range pod.Spec.EphemeralContainers {
		m["ephemeralContainers/"+c.Name] = c.Image
	}
	return m
}

// originalImages decodes detour's annotation; nil when the Pod has none.
func originalImages(t *testing.T, pod *corev1.Pod) map[string]string {
	t.Helper()
	raw, ok := pod.Annotations[originalImagesAnnotation]
	if !ok {
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("annotation %s of Pod %s is not a JSON object of strings: %v: %s", originalImagesAnnotation, pod.Name, err, raw)
	}
	return m
}

// writeFileAtomically replaces path the way careful tools and ConfigMap mounts do: a new
// file renamed over the old one, so a reader never sees half a file.
func writeFileAtomically(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// writeConfig writes a detour config file into the test's temporary directory.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "detour.yaml")
	writeFileAtomically(t, path, content)
	return path
}
