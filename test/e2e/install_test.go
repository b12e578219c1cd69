//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Names deploy/detour.yaml gives its objects.
const (
	installNamespace  = "detour-system"
	installName       = "detour" // ServiceAccount, ConfigMap, Deployment, Service, webhook configuration
	installSecret     = "detour-tls"
	installServiceAcc = "system:serviceaccount:detour-system:detour"
)

// installManifest is the one-file install, relative to this package's directory.
var installManifest = filepath.Join("..", "..", "deploy", "detour.yaml")

// needKubectl returns kubectl's path, failing the test with what to install if it is missing.
func needKubectl(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl not found on PATH (%v): install the kubectl package (v1.32, from the Kubernetes apt repository; the machine image has it at /usr/bin/kubectl)", err)
	}
	return path
}

// kubectl runs kubectl against the test cluster as its admin and returns stdout and stderr.
func kubectl(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), needKubectl(t), append([]string{"--kubeconfig", cluster.kubeconfig}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// mustKubectl is kubectl that fails the test on a non-zero exit.
func mustKubectl(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	stdout, stderr, err := kubectl(t, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout, stderr)
	}
	return stdout, stderr
}

// manifestObjects lists "kind/name" of every document in the install manifest, the way
// kubectl prints them (lower-case kind, with the API group for non-core kinds).
func manifestObjects(t *testing.T) []string {
	t.Helper()
	out, _ := mustKubectl(t, "create", "--dry-run=client", "-f", installManifest, "-o", "name")
	return strings.Fields(out)
}

// ensureInstallNamespace creates detour-system unless it exists. A server-side dry run of
// the whole manifest needs it: the Namespace object in the same file is not persisted by a
// dry run, so every namespaced object after it would fail with "namespace not found".
func ensureInstallNamespace(t *testing.T) {
	t.Helper()
	_, err := cluster.client.CoreV1().Namespaces().Get(t.Context(), installNamespace, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		// --save-config, as a user's earlier `kubectl apply` would have left it: otherwise
		// applying the manifest warns about the missing last-applied annotation.
		mustKubectl(t, "create", "namespace", installNamespace, "--save-config")
	} else if err != nil {
		t.Fatalf("reading namespace %s: %v", installNamespace, err)
	}
}

// applyInstall applies deploy/detour.yaml for real. Without kube-controller-manager its
// Deployment makes no Pods; everything else is as in a cluster.
func applyInstall(t *testing.T) {
	t.Helper()
	mustKubectl(t, "apply", "-f", installManifest)
}

// deleteInstallWebhook removes the webhook configuration "detour". The installed one
// selects every Pod in the cluster and points at a Service with no endpoints: left in place,
// it would add its timeout to the Pod creations of every other test.
func deleteInstallWebhook(t *testing.T) {
	err := cluster.client.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), installName, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("deleting MutatingWebhookConfiguration %s: %v", installName, err)
	}
}

// This test is not parallel: the webhook configuration it installs would reach the Pods of
// the parallel tests, which only start once the sequential ones are done.
func TestInstallManifestPassesServerSideValidationAndApplies(t *testing.T) {
	ensureInstallNamespace(t)
	t.Cleanup(func() { deleteInstallWebhook(t) })
	want := manifestObjects(t)
	if len(want) < 10 {
		t.Fatalf("deploy/detour.yaml has %d objects: %q", len(want), want)
	}

	stdout, stderr := mustKubectl(t, "apply", "--dry-run=server", "-f", installManifest)
	for _, obj := range want {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(obj) + ` (created|configured|unchanged) \(server dry run\)$`).MatchString(stdout) {
			t.Errorf("kubectl apply --dry-run=server did not report %s:\n%s", obj, stdout)
		}
	}
	if strings.Contains(stderr, "Warning") {
		t.Errorf("kubectl apply --dry-run=server warned:\n%s", stderr)
	}

	applyInstall(t)
	// Applied again with the Namespace's Pod Security labels in force, the Deployment is
	// checked against the restricted level: a warning would name each violation.
	stdout, stderr = mustKubectl(t, "apply", "--dry-run=server", "-f", installManifest)
	if strings.Contains(stderr, "Warning") || strings.Contains(stdout, "Warning") {
		t.Errorf("re-applying the manifest warned (Pod Security?):\n%s\n%s", stdout, stderr)
	}

	hooks := cluster.client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	cfg, err := hooks.Get(t.Context(), installName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range cfg.Webhooks {
		if len(w.ClientConfig.CABundle) != 0 {
			t.Errorf("webhook %s has a caBundle in the manifest; detour is the one to set it", w.Name)
		}
		if w.ClientConfig.Service == nil || w.ClientConfig.Service.Name != installName || w.ClientConfig.Service.Namespace != installNamespace ||
			w.ClientConfig.Service.Path == nil || *w.ClientConfig.Service.Path != "/mutate" {
			t.Errorf("webhook %s: clientConfig %+v, want the Service %s/%s at /mutate", w.Name, w.ClientConfig, installNamespace, installName)
		}
	}
}

// TestInstallPodTemplateMeetsTheRestrictedPodSecurityLevel creates, as a server-side dry run,
// a Pod from the installed Deployment's template in detour-system, whose Namespace enforces
// the restricted level; and, as a control, the same Pod running as root, which must be
// refused: so the first result means the level is enforced and met.
func TestInstallPodTemplateMeetsTheRestrictedPodSecurityLevel(t *testing.T) {
	ensureInstallNamespace(t)
	applyInstall(t)
	t.Cleanup(func() { deleteInstallWebhook(t) })

	dep, err := cluster.client.AppsV1().Deployments(installNamespace).Get(t.Context(), installName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkDeploymentHardening(t, dep)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "template-", Labels: dep.Spec.Template.Labels},
		Spec:       *dep.Spec.Template.Spec.DeepCopy(),
	}
	pods := cluster.client.CoreV1().Pods(installNamespace)
	if _, err := pods.Create(t.Context(), pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Errorf("a Pod from the Deployment's template is refused in %s: %v", installNamespace, err)
	}
	root := pod.DeepCopy()
	root.Spec.SecurityContext.RunAsNonRoot = nil
	root.Spec.SecurityContext.RunAsUser = new(int64)
	_, err = pods.Create(t.Context(), root, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err == nil || !strings.Contains(err.Error(), "PodSecurity") {
		t.Errorf("the same Pod running as root: err = %v, want a PodSecurity refusal (is the level enforced at all?)", err)
	}
}

func checkDeploymentHardening(t *testing.T, dep *appsv1.Deployment) {
	t.Helper()
	spec := dep.Spec.Template.Spec
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas < 2 {
		t.Errorf("replicas = %v, want at least 2", dep.Spec.Replicas)
	}
	if spec.Affinity == nil || spec.Affinity.PodAntiAffinity == nil {
		t.Error("no pod anti-affinity")
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	if c.ReadinessProbe == nil || c.LivenessProbe == nil || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Error("the container lacks a probe or memory requests and limits")
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("container securityContext %+v: want a read-only root, no privilege escalation, all capabilities dropped", sc)
	}
	want := []string{"serve", "--configmap", "detour-system/detour", "--cert-secret", installSecret, "--webhook-config-name", installName, "--listen", ":8443", "--probe-listen", ":8080"}
	if strings.Join(c.Args, " ") != strings.Join(want, " ") {
		t.Errorf("args %q, want %q", c.Args, want)
	}
	pdb, err := cluster.client.PolicyV1().PodDisruptionBudgets(installNamespace).Get(context.Background(), installName, metav1.GetOptions{})
	if err != nil || pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget %s: %v (err %v), want minAvailable 1", installName, pdb, err)
	}
}

// TestInstallRBACGrantsDetourWhatItNeedsAndNothingMore asks the apiserver, as detour's
// ServiceAccount, about every permission detour uses and a row of ones it must not have.
func TestInstallRBACGrantsDetourWhatItNeedsAndNothingMore(t *testing.T) {
	ensureInstallNamespace(t)
	applyInstall(t)
	t.Cleanup(func() { deleteInstallWebhook(t) })
	other := newNamespace(t, "rbac-other-")

	for _, tc := range []struct {
		args  []string // kubectl auth can-i arguments
		allow bool
	}{
		// What detour does.
		{[]string{"get", "configmaps/detour", "-n", installNamespace}, true},
		{[]string{"list", "configmaps/detour", "-n", installNamespace}, true},
		{[]string{"watch", "configmaps/detour", "-n", installNamespace}, true},
		{[]string{"get", "secrets/detour-tls", "-n", installNamespace}, true},
		{[]string{"update", "secrets/detour-tls", "-n", installNamespace}, true},
		{[]string{"create", "secrets", "-n", installNamespace}, true},
		{[]string{"create", "events", "-n", installNamespace}, true},
		{[]string{"create", "events.events.k8s.io", "-n", installNamespace}, true},
		{[]string{"get", "mutatingwebhookconfigurations.admissionregistration.k8s.io/detour"}, true},
		{[]string{"patch", "mutatingwebhookconfigurations.admissionregistration.k8s.io/detour"}, true},
		// What it must not do.
		{[]string{"get", "secrets/other", "-n", installNamespace}, false},
		{[]string{"list", "secrets", "-n", installNamespace}, false},
		{[]string{"delete", "secrets/detour-tls", "-n", installNamespace}, false},
		{[]string{"patch", "secrets/detour-tls", "-n", installNamespace}, false},
		{[]string{"get", "secrets/detour-tls", "-n", other}, false},
		{[]string{"create", "secrets", "-n", other}, false},
		{[]string{"list", "secrets", "--all-namespaces"}, false},
		{[]string{"get", "mutatingwebhookconfigurations.admissionregistration.k8s.io/other"}, false},
		{[]string{"patch", "mutatingwebhookconfigurations.admissionregistration.k8s.io/other"}, false},
		{[]string{"list", "mutatingwebhookconfigurations.admissionregistration.k8s.io"}, false},
		{[]string{"create", "mutatingwebhookconfigurations.admissionregistration.k8s.io"}, false},
		{[]string{"delete", "mutatingwebhookconfigurations.admissionregistration.k8s.io/detour"}, false},
		{[]string{"update", "mutatingwebhookconfigurations.admissionregistration.k8s.io/detour"}, false},
		{[]string{"patch", "validatingwebhookconfigurations.admissionregistration.k8s.io/detour"}, false},
		{[]string{"get", "pods", "-n", installNamespace}, false},
		{[]string{"list", "pods", "--all-namespaces"}, false},
		{[]string{"get", "configmaps/other", "-n", installNamespace}, false},
		{[]string{"list", "configmaps", "-n", installNamespace}, false},
		{[]string{"update", "configmaps/detour", "-n", installNamespace}, false},
		{[]string{"get", "configmaps/detour", "-n", other}, false},
		{[]string{"list", "configmaps", "--all-namespaces"}, false},
		{[]string{"create", "events", "-n", other}, false},
		{[]string{"*", "*", "-n", installNamespace}, false},
	} {
		args := append([]string{"auth", "can-i", "--as", installServiceAcc}, tc.args...)
		stdout, stderr, err := kubectl(t, args...)
		got := strings.TrimSpace(stdout)
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("kubectl %s: %v %s", strings.Join(args, " "), err, stderr)
		}
		want := map[bool]string{true: "yes", false: "no"}[tc.allow]
		if got != want {
			t.Errorf("can-i %s: %q, want %q (%s)", strings.Join(tc.args, " "), got, want, strings.TrimSpace(stderr))
		}
	}

	// can-i asks the authorizer with a name; a real list or watch carries the name only in
	// a field selector. detour's ConfigMap watch selects metadata.name, which the rule's
	// resourceNames allow; without the selector the same list is refused.
	cfg := rest.CopyConfig(cluster.config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: installServiceAcc}
	sa, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cms := sa.CoreV1().ConfigMaps(installNamespace)
	byName := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", installName).String()}
	if l, err := cms.List(t.Context(), byName); err != nil || len(l.Items) != 1 {
		t.Errorf("listing ConfigMaps with metadata.name=%s as detour: %v (err %v), want the one ConfigMap", installName, l, err)
	}
	w, err := cms.Watch(t.Context(), byName)
	if err != nil {
		t.Errorf("watching ConfigMaps with metadata.name=%s as detour: %v", installName, err)
	} else {
		w.Stop()
	}
	if _, err := cms.List(t.Context(), metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("listing all ConfigMaps of %s as detour: err = %v, want Forbidden", installNamespace, err)
	}
	if _, err := sa.CoreV1().Secrets(installNamespace).Get(t.Context(), "anything", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("reading another Secret as detour: err = %v, want Forbidden", err)
	}
}

// TestInstallConfigMapHoldsTheEmbeddedDefault compares the installed config with what
// `detour config default` prints.
func TestInstallConfigMapHoldsTheEmbeddedDefault(t *testing.T) {
	bin := os.Getenv("DETOUR_BIN")
	if bin == "" {
		t.Skip("DETOUR_BIN is not set")
	}
	ensureInstallNamespace(t)
	applyInstall(t)
	t.Cleanup(func() { deleteInstallWebhook(t) })
	want, err := exec.Command(bin, "config", "default").Output()
	if err != nil {
		t.Fatalf("detour config default: %v", err)
	}
	cm, err := cluster.client.CoreV1().ConfigMaps(installNamespace).Get(t.Context(), installName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := cm.Data["config.yaml"]; got != string(want) {
		t.Errorf("ConfigMap %s/%s config.yaml:\n%s\nwant what `detour config default` prints:\n%s", installNamespace, installName, got, want)
	}
}

// TestSyncCronJobManifestValidatesAndItsPodMeetsTheRestrictedLevel checks
// deploy/sync-cronjob.yaml the same way: a server-side dry run in detour-system without
// warnings, and its Pod admitted where the restricted level is enforced.
func TestSyncCronJobManifestValidatesAndItsPodMeetsTheRestrictedLevel(t *testing.T) {
	ensureInstallNamespace(t)
	applyInstall(t)
	t.Cleanup(func() { deleteInstallWebhook(t) })
	manifest := filepath.Join("..", "..", "deploy", "sync-cronjob.yaml")
	stdout, stderr := mustKubectl(t, "apply", "--dry-run=server", "-f", manifest)
	for _, obj := range []string{"serviceaccount/detour-sync", "configmap/detour-sync-images", "cronjob.batch/detour-sync"} {
		if !strings.Contains(stdout, obj+" ") {
			t.Errorf("kubectl apply --dry-run=server did not report %s:\n%s", obj, stdout)
		}
	}
	if strings.Contains(stderr, "Warning") {
		t.Errorf("kubectl apply --dry-run=server warned:\n%s", stderr)
	}
	out, _ := mustKubectl(t, "create", "--dry-run=client", "-f", manifest, "-o", "json")
	var cj batchv1.CronJob
	for dec := json.NewDecoder(strings.NewReader(out)); cj.Kind != "CronJob"; {
		cj = batchv1.CronJob{}
		if err := dec.Decode(&cj); err != nil {
			break
		}
	}
	if cj.Kind != "CronJob" {
		t.Fatalf("no CronJob in %s", manifest)
	}
	spec := cj.Spec.JobTemplate.Spec.Template.Spec
	if got := strings.Join(spec.Containers[0].Args, " "); got != "sync --config /etc/detour/config.yaml --images /etc/detour/images/images.txt" {
		t.Errorf("args %q", got)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "sync-"}, Spec: spec}
	if _, err := cluster.client.CoreV1().Pods(installNamespace).Create(t.Context(), pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Errorf("the sync Job's Pod is refused in %s: %v", installNamespace, err)
	}
}
