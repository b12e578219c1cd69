//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
)

// syncTimeout bounds one `detour sync` of a few kilobytes between loopback registries.
const syncTimeout = 2 * time.Minute

// TestSyncFromClusterMirrorsWhatPodsRun holds `detour sync --from-cluster` (issue 6) to what
// the webhook recorded: Pods admitted through detour carry their original images in
// detour.dev/original-images, and the real binary copies exactly those images, digests
// unchanged, to where the webhook sent the Pods.
func TestSyncFromClusterMirrorsWhatPodsRun(t *testing.T) {
	t.Parallel()
	bin := os.Getenv("DETOUR_BIN")
	if bin == "" {
		t.Skip("DETOUR_BIN is not set: run test/e2e/run.sh")
	}
	src, mirror := startRegistry(t), startRegistry(t)
	appDigest := src.pushImage(t, "team/app", "v1")
	toolDigest := src.pushImage(t, "team/tool", "v2")
	app, tool := src.host+"/team/app:v1", src.host+"/team/tool:v2"

	config := writeConfig(t, fmt.Sprintf(`
presets: []
insecureRegistries: [%q, %q]
mirrors:
  - from: %q
    to: %q
`, src.host, mirror.host, src.host, mirror.host+"/mirror"))
	d := startDetour(t, "--config", config)
	w := registerWebhook(t, d.url, d.caBundle, admissionregistrationv1.Fail, probe{
		image: src.host + "/team/probe:v0", want: mirror.host + "/mirror/team/probe:v0",
	})
	ns := newNamespace(t, "sync-from-cluster-")

	pod := w.pod("web", ctr("app", app))
	pod.Spec.InitContainers = []corev1.Container{ctr("init", tool)}
	createPod(t, ns, pod)
	// The webhook sent the Pod to the mirror and recorded what it replaced, which is all
	// sync reads.
	got := getPod(t, ns, "web")
	wantImages := map[string]string{
		"containers/app":      mirror.host + "/mirror/team/app:v1",
		"initContainers/init": mirror.host + "/mirror/team/tool:v2",
	}
	if diff := cmp.Diff(wantImages, images(got)); diff != "" {
		t.Fatalf("stored images (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"containers/app": app, "initContainers/init": tool}, originalImages(t, got)); diff != "" {
		t.Fatalf("annotation %s (-want +got):\n%s", originalImagesAnnotation, diff)
	}
	// The Pods could not start yet: the mirror lacks their images.
	wantDigests := []struct{ repo, tag, digest string }{
		{"mirror/team/app", "v1", appDigest},
		{"mirror/team/tool", "v2", toolDigest},
	}
	for _, c := range wantDigests {
		if got := mirror.manifestDigest(t, c.repo, c.tag); got != "" {
			t.Fatalf("mirror has %s:%s (%s) before the sync", c.repo, c.tag, got)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), syncTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "sync", "--config", config, "--from-cluster", "--kubeconfig", cluster.kubeconfig)
	cmd.Env = environWithout("DETOUR_CONFIG", "KUBECONFIG")
	out, err := cmd.CombinedOutput()
	t.Logf("detour sync --from-cluster:\n%s", out)
	if err != nil {
		t.Fatalf("detour sync --from-cluster: %v", err)
	}

	for _, c := range wantDigests {
		if got := mirror.manifestDigest(t, c.repo, c.tag); got != c.digest {
			t.Errorf("mirror %s/%s:%s digest = %q, want %q (the source's)", mirror.host, c.repo, c.tag, got, c.digest)
		}
	}
}
