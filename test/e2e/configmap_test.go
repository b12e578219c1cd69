//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestConfigMapReload is the in-cluster way of configuring detour: `--configmap NS/NAME`
// read and watched through the real apiserver. A change applies within 5 s without a
// restart; an invalid change is refused as a whole, reported as a Warning Event on the
// ConfigMap, and the last good rules keep serving.
func TestConfigMapReload(t *testing.T) {
	t.Parallel()
	config := func(mirror, extra string) string {
		return fmt.Sprintf("presets: []\nmirrors:\n  - from: docker.io\n    to: %s\n%s", mirror, extra)
	}
	cmNS := newNamespace(t, "detour-cm-")
	cms := cluster.client.CoreV1().ConfigMaps(cmNS)
	cm, err := cms.Create(t.Context(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "detour"},
		Data:       map[string]string{"config.yaml": config("cm1.mirror.e2e.test", "")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d := startDetour(t, "--configmap", cmNS+"/detour", "--kubeconfig", cluster.kubeconfig, "--namespace", cmNS)
	w := registerWebhook(t, d.url, d.caBundle, admissionregistrationv1.Fail, probe{
		image: nginx, want: "cm1.mirror.e2e.test/library/nginx:1.25",
	})
	ns := newNamespace(t, "cm-reload-")

	// A valid change takes effect within the deadline.
	cm.Data["config.yaml"] = config("cm2.mirror.e2e.test", "")
	if cm, err = cms.Update(t.Context(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	const v2 = "cm2.mirror.e2e.test/library/nginx:1.25"
	for {
		got, err := w.dryRunImage(t.Context(), ns, nginx)
		if err == nil && got == v2 {
			t.Logf("ConfigMap change in effect %v after the update", time.Since(changed).Round(time.Millisecond))
			break
		}
		if time.Since(changed) > reloadDeadline {
			t.Fatalf("%v after updating the ConfigMap, a new Pod still gets %q (err %v), want %q", reloadDeadline, got, err, v2)
		}
		time.Sleep(pollInterval)
	}

	// An invalid change is refused as a whole: the duplicate rule must keep cm3 out too.
	cm.Data["config.yaml"] = config("cm3.mirror.e2e.test", "  - from: docker.io\n    to: other.e2e.test\n")
	if _, err := cms.Update(t.Context(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); time.Since(start) < refusalWatch; time.Sleep(4 * pollInterval) {
		got, err := w.dryRunImage(t.Context(), ns, nginx)
		if err != nil || got != v2 {
			t.Fatalf("%v after an invalid ConfigMap: image %q, err %v; want the last good config's %q",
				time.Since(start).Round(time.Millisecond), got, err, v2)
		}
	}
	if exited, err := d.proc.exited(); exited {
		t.Fatalf("detour exited after an invalid ConfigMap: %v", err)
	}
	if got := createPod(t, ns, w.pod("after-refusal", ctr("web", nginx))).Spec.Containers[0].Image; got != v2 {
		t.Errorf("Pod created after the refused ConfigMap: image %q, want %q", got, v2)
	}
	events, err := cluster.client.CoreV1().Events(cmNS).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, e := range events.Items {
		if e.InvolvedObject.Kind == "ConfigMap" && e.InvolvedObject.Name == "detour" && e.Type == corev1.EventTypeWarning &&
			strings.Contains(e.Message, "same from") {
			found = true
		}
	}
	if !found {
		t.Errorf("no Warning Event on ConfigMap %s/detour naming the problem; events: %+v", cmNS, events.Items)
	}
}
