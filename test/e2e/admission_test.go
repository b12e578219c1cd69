//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// These tests hold `detour serve` to SPEC §4 through a real apiserver. Unless a test is
// about failurePolicy, webhooks are registered with Fail: a detour that errors or is not
// called must fail the test, not quietly leave images as written.

// Under the embedded default (the daocloud preset).
const (
	nginx            = "nginx:1.25"
	nginxRewritten   = "docker.m.daocloud.io/library/nginx:1.25"
	pause            = "registry.k8s.io/pause:3.9"
	pauseRewritten   = "k8s.m.daocloud.io/pause:3.9"
	busybox          = "busybox:1.36"
	busyboxRewritten = "docker.m.daocloud.io/library/busybox:1.36"
)

// digest is a well-formed sha256 digest; nothing is pulled, so it need not exist.
var digest = "sha256:" + strings.Repeat("0123456789abcdef", 4)

// defaultDetour starts detour with its embedded default config and registers it.
func defaultDetour(t *testing.T) *webhook {
	t.Helper()
	d := startDetour(t)
	return registerWebhook(t, d.url, d.caBundle, admissionregistrationv1.Fail, probe{image: nginx, want: nginxRewritten})
}

func TestDefaultConfigRewritesContainersAndInitContainers(t *testing.T) {
	t.Parallel()
	w := defaultDetour(t)
	ns := newNamespace(t, "default-config-")

	pod := w.pod("web",
		ctr("web", nginx),
		ctr("metrics", "quay.io/prometheus/node-exporter:v1.8.2"),
		ctr("tool", "ghcr.io/example/tool:v1@"+digest),
		ctr("legacy", "k8s.gcr.io/echoserver:1.4"),
		ctr("gcr", "gcr.io/distroless/static:nonroot"),
		ctr("local", "localhost:5000/team/app:1"),               // no rule matches
		ctr("mirrored", "docker.m.daocloud.io/library/redis:7"), // already under a rule's `to`
	)
	pod.Spec.InitContainers = []corev1.Container{ctr("init", pause)}
	createPod(t, ns, pod)
	got := getPod(t, ns, "web")

	want := map[string]string{
		"initContainers/init": pauseRewritten,
		"containers/web":      nginxRewritten,
		"containers/metrics":  "quay.m.daocloud.io/prometheus/node-exporter:v1.8.2",
		"containers/tool":     "ghcr.m.daocloud.io/example/tool:v1@" + digest,
		"containers/legacy":   "k8s-gcr.m.daocloud.io/echoserver:1.4",
		"containers/gcr":      "gcr.m.daocloud.io/distroless/static:nonroot",
		"containers/local":    "localhost:5000/team/app:1",
		"containers/mirrored": "docker.m.daocloud.io/library/redis:7",
	}
	if diff := cmp.Diff(want, images(got)); diff != "" {
		t.Errorf("stored images (-want +got):\n%s", diff)
	}
	wantOriginals := map[string]string{
		"initContainers/init": pause,
		"containers/web":      nginx,
		"containers/metrics":  "quay.io/prometheus/node-exporter:v1.8.2",
		"containers/tool":     "ghcr.io/example/tool:v1@" + digest,
		"containers/legacy":   "k8s.gcr.io/echoserver:1.4",
		"containers/gcr":      "gcr.io/distroless/static:nonroot",
	}
	if diff := cmp.Diff(wantOriginals, originalImages(t, got)); diff != "" {
		t.Errorf("annotation %s (-want +got):\n%s", originalImagesAnnotation, diff)
	}
}

func TestCustomConfigPathPrefixAndFallbackChain(t *testing.T) {
	t.Parallel()
	// The prefix rule comes after the host rule on purpose: the longest `from` wins, not the
	// first one.
	config := writeConfig(t, `
presets: []
mirrors:
  - from: docker.io
    to: [hub-a.mirror.e2e.test, hub-b.mirror.e2e.test]
  - from: gcr.io
    to: gcr.mirror.e2e.test
  - from: gcr.io/google-containers
    to: mirror.e2e.test/google
`)
	d := startDetour(t, "--config", config)
	w := registerWebhook(t, d.url, d.caBundle, admissionregistrationv1.Fail, probe{
		image: nginx, want: "hub-a.mirror.e2e.test/library/nginx:1.25",
	})
	ns := newNamespace(t, "custom-config-")

	pod := w.pod("web",
		ctr("web", nginx),
		ctr("prefix", "gcr.io/google-containers/busybox:1.24"),
		ctr("near-prefix", "gcr.io/google-containers-x/tool:1"),
		ctr("host", "gcr.io/project/app:2"),
		ctr("local", "localhost:5000/team/app:1"),
	)
	pod.Spec.InitContainers = []corev1.Container{ctr("init", "gcr.io/google-containers/pause:3.2")}
	createPod(t, ns, pod)

	want := map[string]string{
		"initContainers/init":    "mirror.e2e.test/google/pause:3.2",
		"containers/web":         "hub-a.mirror.e2e.test/library/nginx:1.25", // first entry of the chain
		"containers/prefix":      "mirror.e2e.test/google/busybox:1.24",
		"containers/near-prefix": "gcr.mirror.e2e.test/google-containers-x/tool:1",
		"containers/host":        "gcr.mirror.e2e.test/project/app:2",
		"containers/local":       "localhost:5000/team/app:1",
	}
	if diff := cmp.Diff(want, images(getPod(t, ns, "web"))); diff != "" {
		t.Errorf("stored images (-want +got):\n%s", diff)
	}
}

func TestEphemeralContainerIsRewritten(t *testing.T) {
	t.Parallel()
	w := defaultDetour(t)
	ns := newNamespace(t, "ephemeral-")
	pod := createPod(t, ns, w.pod("target", ctr("app", nginx)))

	// What `kubectl debug` does: an UPDATE of the pods/ephemeralcontainers subresource.
	pod.Spec.EphemeralContainers = append(pod.Spec.EphemeralContainers, corev1.EphemeralContainer{
		EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", Image: busybox, Stdin: true, TTY: true},
		TargetContainerName:      "app",
	})
	if _, err := cluster.client.CoreV1().Pods(ns).UpdateEphemeralContainers(t.Context(), pod.Name, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("adding an ephemeral container: %v", err)
	}

	// Only images: the apiserver keeps nothing but ephemeralContainers from a subresource
	// update, so detour's annotation cannot change here.
	want := map[string]string{
		"containers/app":               nginxRewritten,
		"ephemeralContainers/debugger": busyboxRewritten,
	}
	if diff := cmp.Diff(want, images(getPod(t, ns, "target"))); diff != "" {
		t.Errorf("stored images (-want +got):\n%s", diff)
	}
}

func TestPodUpdates(t *testing.T) {
	t.Parallel()
	w := defaultDetour(t)
	ns := newNamespace(t, "update-")
	pods := cluster.client.CoreV1().Pods(ns)

	t.Run("a label change leaves images and the annotation alone", func(t *testing.T) {
		created := createPod(t, ns, w.pod("web", ctr("web", nginx), ctr("side", busybox)))
		if diff := cmp.Diff(map[string]string{"containers/web": nginxRewritten, "containers/side": busyboxRewritten}, images(created)); diff != "" {
			t.Fatalf("images after create (-want +got):\n%s", diff)
		}
		before := originalImages(t, created)

		created.Labels["tier"] = "frontend"
		if _, err := pods.Update(t.Context(), created, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("updating labels: %v", err)
		}
		got := getPod(t, ns, "web")
		if got.Labels["tier"] != "frontend" {
			t.Errorf("label tier = %q, want frontend", got.Labels["tier"])
		}
		if diff := cmp.Diff(images(created), images(got)); diff != "" {
			t.Errorf("images after a label update (-before +after):\n%s", diff)
		}
		if diff := cmp.Diff(before, originalImages(t, got)); diff != "" {
			t.Errorf("annotation %s after a label update (-before +after):\n%s", originalImagesAnnotation, diff)
		}
	})

	t.Run("an image changed by an update is rewritten", func(t *testing.T) {
		created := createPod(t, ns, w.pod("bump", ctr("web", nginx)))
		created.Spec.Containers[0].Image = "nginx:1.26"
		if _, err := pods.Update(t.Context(), created, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("updating the image: %v", err)
		}
		if got, want := getPod(t, ns, "bump").Spec.Containers[0].Image, "docker.m.daocloud.io/library/nginx:1.26"; got != want {
			t.Errorf("image after update = %q, want %q", got, want)
		}
	})

	t.Run("an update does not rewrite images that were already there", func(t *testing.T) {
		// A Pod created before detour: without the selector label the webhook is not called.
		old := w.pod("old", ctr("web", nginx))
		delete(old.Labels, webhookSelectorLabel)
		created := createPod(t, ns, old)
		if got := created.Spec.Containers[0].Image; got != nginx {
			t.Fatalf("image of a Pod the webhook does not select = %q, want %q", got, nginx)
		}
		// Now the webhook sees an UPDATE whose images equal oldObject's.
		created.Labels = map[string]string{webhookSelectorLabel: w.selector, "tier": "frontend"}
		if _, err := pods.Update(t.Context(), created, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("updating labels: %v", err)
		}
		got := getPod(t, ns, "old")
		if img := got.Spec.Containers[0].Image; img != nginx {
			t.Errorf("image after a label update = %q, want it unchanged: %q", img, nginx)
		}
		if o := originalImages(t, got); o != nil {
			t.Errorf("annotation %s = %v, want none", originalImagesAnnotation, o)
		}
	})
}

func TestImagesLeftAsWritten(t *testing.T) {
	t.Parallel()
	w := defaultDetour(t)
	ns := newNamespace(t, "as-written-")

	t.Run("the escape prefix is removed and nothing else changes", func(t *testing.T) {
		createPod(t, ns, w.pod("escaped",
			ctr("short", "direct.to/busybox:latest"),
			ctr("long", "direct.to/gcr.io/a/b:1"),
		))
		want := map[string]string{"containers/short": "busybox:latest", "containers/long": "gcr.io/a/b:1"}
		if diff := cmp.Diff(want, images(getPod(t, ns, "escaped"))); diff != "" {
			t.Errorf("stored images (-want +got):\n%s", diff)
		}
	})

	t.Run("a Pod in kube-system, excluded by default, is admitted unchanged", func(t *testing.T) {
		pod := w.pod("", ctr("web", nginx))
		pod.GenerateName = "detour-e2e-"
		created := createPod(t, metav1.NamespaceSystem, pod)
		t.Cleanup(func() {
			// kube-system outlives the test's namespaces; t.Context is cancelled by now.
			_ = cluster.client.CoreV1().Pods(metav1.NamespaceSystem).Delete(context.Background(), created.Name, metav1.DeleteOptions{})
		})
		assertUnchanged(t, getPod(t, metav1.NamespaceSystem, created.Name), nginx)
	})

	t.Run("a Pod labelled detour.dev/skip is admitted unchanged", func(t *testing.T) {
		pod := w.pod("skipped", ctr("web", nginx))
		pod.Labels["detour.dev/skip"] = "true"
		createPod(t, ns, pod)
		assertUnchanged(t, getPod(t, ns, "skipped"), nginx)
	})
}

// assertUnchanged checks that a Pod's only container kept image and that detour recorded
// nothing.
func assertUnchanged(t *testing.T, pod *corev1.Pod, image string) {
	t.Helper()
	if got := pod.Spec.Containers[0].Image; got != image {
		t.Errorf("Pod %s/%s: image = %q, want it as written: %q", pod.Namespace, pod.Name, got, image)
	}
	if o := originalImages(t, pod); o != nil {
		t.Errorf("Pod %s/%s: annotation %s = %v, want none", pod.Namespace, pod.Name, originalImagesAnnotation, o)
	}
}

func TestNamespaceGlobs(t *testing.T) {
	t.Parallel()
	config := writeConfig(t, `
presets: []
namespaces:
  include: ["team-*"]
  exclude: ["team-private-*"]
mirrors:
  - from: docker.io
    to: ns.mirror.e2e.test
`)
	team := newNamespace(t, "team-")
	private := newNamespace(t, "team-private-")
	other := newNamespace(t, "other-")
	d := startDetour(t, "--config", config)
	w := registerWebhook(t, d.url, d.caBundle, admissionregistrationv1.Fail, probe{
		namespace: team, image: nginx, want: "ns.mirror.e2e.test/library/nginx:1.25",
	})

	for _, tc := range []struct {
		name      string
		namespace string
		want      string // stored image of nginx:1.25
	}{
		{"a namespace matching include is rewritten", team, "ns.mirror.e2e.test/library/nginx:1.25"},
		{"a namespace matching an exclude glob is left alone", private, nginx},
		{"a namespace outside include is left alone", other, nginx},
	} {
		t.Run(tc.name, func(t *testing.T) {
			createPod(t, tc.namespace, w.pod("web", ctr("web", nginx)))
			if got := getPod(t, tc.namespace, "web").Spec.Containers[0].Image; got != tc.want {
				t.Errorf("image in namespace %s = %q, want %q", tc.namespace, got, tc.want)
			}
		})
	}
}

func TestDetourDown(t *testing.T) {
	t.Parallel()

	t.Run("with failurePolicy Ignore Pods are created with their original images", func(t *testing.T) {
		t.Parallel()
		d := startDetour(t)
		w := registerWebhook(t, d.url, d.caBundle, admissionregistrationv1.Ignore, probe{image: nginx, want: nginxRewritten})
		ns := newNamespace(t, "down-ignore-")
		d.stop()

		createPod(t, ns, w.pod("web", ctr("web", nginx)))
		assertUnchanged(t, getPod(t, ns, "web"), nginx)
	})

	t.Run("with failurePolicy Fail creation fails calling the webhook", func(t *testing.T) {
		t.Parallel()
		d := startDetour(t)
		w := registerWebhook(t, d.url, d.caBundle, admissionregistrationv1.Fail, probe{image: nginx, want: nginxRewritten})
		ns := newNamespace(t, "down-fail-")
		d.stop()

		_, err := cluster.client.CoreV1().Pods(ns).Create(t.Context(), w.pod("web", ctr("web", nginx)), metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "failed calling webhook") || !strings.Contains(err.Error(), w.name) {
			t.Fatalf("create with detour stopped: err = %v, want one about failed calling webhook %q", err, w.name)
		}
		if _, err := cluster.client.CoreV1().Pods(ns).Get(t.Context(), "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("get of the refused Pod: err = %v, want NotFound", err)
		}
	})
}

// Config reload deadlines. SPEC §4: a new config takes effect within 5 s; the invalid one is
// watched a little longer than that, so a late half-application would be seen.
const (
	reloadDeadline = 5 * time.Second
	refusalWatch   = 6 * time.Second
)

func TestConfigReload(t *testing.T) {
	t.Parallel()
	config := func(mirror, extra string) string {
		return fmt.Sprintf("presets: []\nmirrors:\n  - from: docker.io\n    to: %s\n%s", mirror, extra)
	}
	path := writeConfig(t, config("v1.mirror.e2e.test", ""))
	d := startDetour(t, "--config", path)
	w := registerWebhook(t, d.url, d.caBundle, admissionregistrationv1.Fail, probe{
		image: nginx, want: "v1.mirror.e2e.test/library/nginx:1.25",
	})
	ns := newNamespace(t, "reload-")

	// A valid new config takes effect within the deadline.
	writeFileAtomically(t, path, config("v2.mirror.e2e.test", ""))
	changed := time.Now()
	const v2 = "v2.mirror.e2e.test/library/nginx:1.25"
	for {
		got, err := w.dryRunImage(t.Context(), ns, nginx)
		if err == nil && got == v2 {
			t.Logf("new config in effect %v after the rename", time.Since(changed).Round(time.Millisecond))
			break
		}
		if time.Since(changed) > reloadDeadline {
			t.Fatalf("%v after replacing the config, a new Pod still gets %q (err %v), want %q", reloadDeadline, got, err, v2)
		}
		time.Sleep(pollInterval)
	}
	if got := createPod(t, ns, w.pod("after-reload", ctr("web", nginx))).Spec.Containers[0].Image; got != v2 {
		t.Errorf("Pod created after the reload: image %q, want %q", got, v2)
	}

	// An invalid one is refused as a whole: the unknown key must also keep the v3 rule out.
	writeFileAtomically(t, path, config("v3.mirror.e2e.test", "notAKey: true\n"))
	for start := time.Now(); time.Since(start) < refusalWatch; time.Sleep(4 * pollInterval) {
		got, err := w.dryRunImage(t.Context(), ns, nginx)
		if err != nil || got != v2 {
			t.Fatalf("%v after writing an invalid config: image %q, err %v; want the last good config's %q",
				time.Since(start).Round(time.Millisecond), got, err, v2)
		}
	}
	if exited, err := d.proc.exited(); exited {
		t.Fatalf("detour exited after an invalid config: %v", err)
	}
	if got := createPod(t, ns, w.pod("after-refusal", ctr("web", nginx))).Spec.Containers[0].Image; got != v2 {
		t.Errorf("Pod created after the refused config: image %q, want %q", got, v2)
	}
}

func TestServerDryRunCreatesNothing(t *testing.T) {
	t.Parallel()
	w := defaultDetour(t)
	ns := newNamespace(t, "dry-run-")
	pods := cluster.client.CoreV1().Pods(ns)

	got, err := pods.Create(t.Context(), w.pod("dry", ctr("web", nginx)), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		t.Fatalf("dry-run create: %v", err)
	}
	if img := got.Spec.Containers[0].Image; img != nginxRewritten {
		t.Errorf("dry-run answer: image %q, want %q (the webhook runs for dry runs too)", img, nginxRewritten)
	}
	if _, err := pods.Get(t.Context(), "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get after a dry run: err = %v, want NotFound", err)
	}
	list, err := pods.List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 {
		t.Errorf("namespace %s holds %d Pods after a dry run, want 0", ns, len(list.Items))
	}
}

// TestRichPodSpecOnlyImagesChange checks that detour's patch touches images and its
// annotation and nothing else.
//
// The reference is the same Pod created with --dry-run=server without the webhook selector
// label, in the same namespace: the webhook is not called for it (checked below), yet it goes
// through exactly the same decoding, defaulting and admission as the real create. Comparing
// against the Pod as sent would instead flag every field the apiserver defaults. The real
// Pod's stored spec must equal the reference's with only the images replaced.
func TestRichPodSpecOnlyImagesChange(t *testing.T) {
	t.Parallel()
	w := defaultDetour(t)
	ns := newNamespace(t, "rich-")

	sent := w.pod("rich")
	sent.Labels["app"] = "shop"
	sent.Annotations = map[string]string{"team": "payments"}
	sent.Spec = richSpec()
	wantImages := map[string]string{
		"initContainers/migrate": "k8s.m.daocloud.io/e2e-test-images/agnhost:2.52",
		"initContainers/logs":    "ghcr.m.daocloud.io/example/log-shipper:v2@" + digest,
		"containers/app":         "quay.m.daocloud.io/example/shop:v1.2.3",
		"containers/proxy":       "docker.m.daocloud.io/library/nginx:1.25@" + digest,
	}

	unselected := sent.DeepCopy()
	delete(unselected.Labels, webhookSelectorLabel)
	reference, err := cluster.client.CoreV1().Pods(ns).Create(t.Context(), unselected, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		t.Fatalf("dry-run create of the reference Pod: %v", err)
	}
	if diff := cmp.Diff(images(sent), images(reference)); diff != "" {
		t.Fatalf("the webhook changed the reference Pod, so it is no reference (-sent +reference):\n%s", diff)
	}

	stored := getPod(t, ns, createPod(t, ns, sent).Name)
	if diff := cmp.Diff(wantImages, images(stored)); diff != "" {
		t.Errorf("stored images (-want +got):\n%s", diff)
	}

	want := reference.Spec.DeepCopy()
	for i := range want.InitContainers {
		want.InitContainers[i].Image = wantImages["initContainers/"+want.InitContainers[i].Name]
	}
	for i := range want.Containers {
		want.Containers[i].Image = wantImages["containers/"+want.Containers[i].Name]
	}
	if diff := cmp.Diff(asJSON(t, want), asJSON(t, &stored.Spec)); diff != "" {
		t.Errorf("stored spec differs from the defaulted spec in more than images (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(sent.Labels, stored.Labels); diff != "" {
		t.Errorf("labels (-sent +stored):\n%s", diff)
	}
	annotations := map[string]string{}
	for k, v := range stored.Annotations {
		if k != originalImagesAnnotation {
			annotations[k] = v
		}
	}
	if diff := cmp.Diff(sent.Annotations, annotations); diff != "" {
		t.Errorf("annotations other than %s (-sent +stored):\n%s", originalImagesAnnotation, diff)
	}
	if diff := cmp.Diff(images(sent), originalImages(t, stored)); diff != "" {
		t.Errorf("annotation %s (-want +got):\n%s", originalImagesAnnotation, diff)
	}
}

// asJSON is v as the generic JSON the apiserver stores, which cmp can diff field by field
// (resource.Quantity, for one, defeats a reflective comparison).
func asJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// richSpec uses as many kinds of Pod field as it reasonably can, each set to a value other
// than its default, so that a patch that rewrote, reordered or dropped anything would show.
func richSpec() corev1.PodSpec {
	yes, no := true, false
	always := corev1.ContainerRestartPolicyAlways
	user, group, fsGroup := int64(1000), int64(3000), int64(2000)
	grace := int64(45)
	ndots := "2"
	return corev1.PodSpec{
		InitContainers: []corev1.Container{
			{
				Name:    "migrate",
				Image:   "registry.k8s.io/e2e-test-images/agnhost:2.52",
				Command: []string{"/agnhost", "pause"},
				Env:     []corev1.EnvVar{{Name: "STEP", Value: "migrate"}},
			},
			{
				Name:          "logs",
				Image:         "ghcr.io/example/log-shipper:v2@" + digest,
				RestartPolicy: &always, // a native sidecar
				VolumeMounts:  []corev1.VolumeMount{{Name: "cache", MountPath: "/var/log/app", ReadOnly: true}},
			},
		},
		Containers: []corev1.Container{
			{
				Name:       "app",
				Image:      "quay.io/example/shop:v1.2.3",
				Command:    []string{"/shop"},
				Args:       []string{"--port=8080", "--verbose"},
				WorkingDir: "/srv",
				Ports: []corev1.ContainerPort{
					{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
					{Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolUDP},
				},
				Env: []corev1.EnvVar{
					{Name: "MODE", Value: "production"},
					{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
					{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
						LocalObjectReference: corev1.LocalObjectReference{Name: "shop"}, Key: "token", Optional: &yes,
					}}},
				},
				EnvFrom: []corev1.EnvFromSource{{
					Prefix:       "CFG_",
					ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "shop-env"}, Optional: &yes},
				}},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{
						corev1.ResourceCPU:    resource.MustParse("250m"),
						corev1.ResourceMemory: resource.MustParse("64Mi"),
					},
					Limits: corev1.ResourceList{
						corev1.ResourceCPU:              resource.MustParse("1.5"),
						corev1.ResourceMemory:           resource.MustParse("128Mi"),
						corev1.ResourceEphemeralStorage: resource.MustParse("1Gi"),
					},
				},
				VolumeMounts: []corev1.VolumeMount{
					{Name: "cache", MountPath: "/cache"},
					{Name: "config", MountPath: "/etc/shop", ReadOnly: true, SubPath: "shop"},
				},
				LivenessProbe: &corev1.Probe{
					ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
						Path: "/healthz", Port: intstr.FromString("http"),
						HTTPHeaders: []corev1.HTTPHeader{{Name: "X-Probe", Value: "liveness"}},
					}},
					InitialDelaySeconds: 5, PeriodSeconds: 7, TimeoutSeconds: 2, FailureThreshold: 4,
				},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/ready"}}},
					PeriodSeconds: 3,
				},
				StartupProbe: &corev1.Probe{
					ProbeHandler:     corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
					FailureThreshold: 30,
				},
				Lifecycle: &corev1.Lifecycle{
					PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"/shop", "warm"}}},
					PreStop:   &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/drain", Port: intstr.FromInt32(8080)}},
				},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: &no,
					ReadOnlyRootFilesystem:   &yes,
					RunAsNonRoot:             &yes,
					RunAsUser:                &user,
					Capabilities: &corev1.Capabilities{
						Drop: []corev1.Capability{"ALL"},
						Add:  []corev1.Capability{"NET_BIND_SERVICE"},
					},
					SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
				},
				TerminationMessagePath:   "/dev/shop-termination",
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
			},
			{
				Name:            "proxy",
				Image:           "nginx:1.25@" + digest,
				ImagePullPolicy: corev1.PullAlways,
				Ports:           []corev1.ContainerPort{{ContainerPort: 80}},
			},
		},
		Volumes: []corev1.Volume{
			{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
				Medium: corev1.StorageMediumMemory, SizeLimit: ptr(resource.MustParse("16Mi")),
			}}},
			{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "shop-config"},
				Items:                []corev1.KeyToPath{{Key: "shop.yaml", Path: "shop/config.yaml"}},
			}}},
		},
		SecurityContext: &corev1.PodSecurityContext{
			RunAsGroup:         &group,
			FSGroup:            &fsGroup,
			SupplementalGroups: []int64{4000, 5000},
			Sysctls:            []corev1.Sysctl{{Name: "net.ipv4.ip_local_port_range", Value: "1024 65000"}},
		},
		ImagePullSecrets:              []corev1.LocalObjectReference{{Name: "regcred"}},
		NodeSelector:                  map[string]string{"kubernetes.io/os": "linux"},
		Tolerations:                   []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "shop", Effect: corev1.TaintEffectNoSchedule}},
		HostAliases:                   []corev1.HostAlias{{IP: "10.1.2.3", Hostnames: []string{"db.internal"}}},
		DNSConfig:                     &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: &ndots}}},
		TerminationGracePeriodSeconds: &grace,
		Hostname:                      "shop",
		Subdomain:                     "shops",
	}
}

func ptr[T any](v T) *T { return &v }
