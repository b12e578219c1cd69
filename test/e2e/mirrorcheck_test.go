//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
)

// mirrorChoiceAnnotation is where detour records which entry of a fallback chain availability
// checking chose (SPEC §6).
const mirrorChoiceAnnotation = "detour.dev/mirror-choice"

// registryBinary is the Debian docker-registry (CNCF distribution 2.8).
const registryBinary = "/usr/bin/docker-registry"

// registryReadyTimeout bounds a docker-registry start; it answers /v2/ within a second here.
const registryReadyTimeout = 20 * time.Second

// manifestAccept is every manifest media type: distribution 2.8 converts or hides manifests
// when a type is missing from Accept (notes/registries.md).
var manifestAccept = strings.Join([]string{
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.oci.image.index.v1+json",
}, ", ")

// imageRegistry is a running docker-registry on a loopback port, plain HTTP.
type imageRegistry struct {
	host string // 127.0.0.1:PORT
	url  string // http://host
}

// startRegistry runs the real docker-registry with filesystem storage in the test's temporary
// directory, and stops it by PID at test end. The test is skipped without the binary.
func startRegistry(t *testing.T) *imageRegistry {
	t.Helper()
	if _, err := os.Stat(registryBinary); err != nil {
		t.Skipf("%s not found: run hack/ensure-test-deps.sh", registryBinary)
	}
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	r := &imageRegistry{host: "127.0.0.1:" + strconv.Itoa(ports[0])}
	r.url = "http://" + r.host
	dir := t.TempDir()
	config := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: %q
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %q
  secret: e2e-not-secret
`, filepath.Join(dir, "storage"), r.host)), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := startProcess("docker-registry", logPath(t, "registry"), exec.Command(registryBinary, "serve", config))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stop(stopGrace)
		if t.Failed() {
			t.Logf("docker-registry %s log %s (last lines):\n%s", r.host, p.logPath, tail(p.logPath, 20))
		}
	})
	if err := p.waitReady(registryReadyTimeout, func(ctx context.Context) error {
		return httpOK(ctx, http.DefaultClient, r.url+"/v2/")
	}); err != nil {
		t.Fatal(err)
	}
	return r
}

// pushImage uploads a small random single-layer image to repo:tag, the way `docker push`
// does (monolithic blob uploads, then a Docker schema 2 manifest), and returns the manifest
// digest the registry reports.
func (r *imageRegistry) pushImage(t *testing.T, repo, tag string) string {
	t.Helper()
	noise := make([]byte, 1024)
	if _, err := rand.Read(noise); err != nil {
		t.Fatal(err)
	}
	var layerTar bytes.Buffer
	tw := tar.NewWriter(&layerTar)
	if err := tw.WriteHeader(&tar.Header{Name: "noise", Mode: 0o644, Size: int64(len(noise)), ModTime: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(noise); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var layer bytes.Buffer
	zw := gzip.NewWriter(&layer)
	if _, err := zw.Write(layerTar.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{sha256Digest(layerTar.Bytes())}},
	})
	r.pushBlob(t, repo, config)
	r.pushBlob(t, repo, layer.Bytes())
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.docker.distribution.manifest.v2+json",
		"config": map[string]any{
			"mediaType": "application/vnd.docker.container.image.v1+json",
			"size":      len(config),
			"digest":    sha256Digest(config),
		},
		"layers": []map[string]any{{
			"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
			"size":      layer.Len(),
			"digest":    sha256Digest(layer.Bytes()),
		}},
	})
	resp := r.do(t, http.MethodPut, r.url+"/v2/"+repo+"/manifests/"+tag,
		"application/vnd.docker.distribution.manifest.v2+json", manifest, http.StatusCreated)
	if got, want := resp.Header.Get("Docker-Content-Digest"), sha256Digest(manifest); got != want {
		t.Fatalf("pushing %s/%s:%s: registry says digest %q, want %q", r.host, repo, tag, got, want)
	}
	return sha256Digest(manifest)
}

// pushBlob uploads one blob in a single POST + PUT.
func (r *imageRegistry) pushBlob(t *testing.T, repo string, blob []byte) {
	t.Helper()
	resp := r.do(t, http.MethodPost, r.url+"/v2/"+repo+"/blobs/uploads/", "", nil, http.StatusAccepted)
	loc, err := url.Parse(r.url + "/")
	if err == nil {
		loc, err = loc.Parse(resp.Header.Get("Location"))
	}
	if err != nil {
		t.Fatalf("upload location %q from %s: %v", resp.Header.Get("Location"), r.host, err)
	}
	q := loc.Query()
	q.Set("digest", sha256Digest(blob))
	loc.RawQuery = q.Encode()
	r.do(t, http.MethodPut, loc.String(), "application/octet-stream", blob, http.StatusCreated)
}

// do sends one request and fails the test unless the answer has status want.
func (r *imageRegistry) do(t *testing.T, method, target, contentType string, body []byte, want int) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %s (want %d): %s", method, target, resp.Status, want, msg)
	}
	return resp
}

// manifestDigest returns the digest of repo:ref as the registry serves it, or "" when the
// registry answers 404.
func (r *imageRegistry) manifestDigest(t *testing.T, repo, ref string) string {
	t.Helper()
	target := r.url + "/v2/" + repo + "/manifests/" + ref
	req, err := http.NewRequestWithContext(t.Context(), http.MethodHead, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("HEAD %s: %v", target, err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.Header.Get("Docker-Content-Digest")
	case http.StatusNotFound:
		return ""
	}
	t.Fatalf("HEAD %s: %s", target, resp.Status)
	return ""
}

func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// TestMirrorChainChoosesTheMirrorThatHasTheImage holds SPEC §6 through the apiserver: with
// check.enabled, an image goes to the first mirror of its chain that really has it, and one
// that no mirror has is stored as written.
func TestMirrorChainChoosesTheMirrorThatHasTheImage(t *testing.T) {
	t.Parallel()
	lacking, having := startRegistry(t), startRegistry(t)
	having.pushImage(t, "q/team/app", "v1")

	const (
		app  = "quay.io/team/app:v1"
		none = "quay.io/team/none:v1"
	)
	appOnB := having.host + "/q/team/app:v1"
	// A blind rewrite would take the first entry: the test must tell the two apart.
	if got := lacking.manifestDigest(t, "q/team/app", "v1"); got != "" {
		t.Fatalf("registry A %s has q/team/app:v1 (%s); the test needs it to lack it", lacking.host, got)
	}

	config := writeConfig(t, fmt.Sprintf(`
presets: []
check:
  enabled: true
  timeout: 1s
  budget: 3s
mirrors:
  - from: quay.io
    to: [%q, %q]
`, lacking.host+"/q", having.host+"/q"))
	d := startDetour(t, "--config", config)
	w := registerWebhook(t, d.url, d.caBundle, admissionregistrationv1.Fail, probe{image: app, want: appOnB})
	ns := newNamespace(t, "mirror-check-")

	createPod(t, ns, w.pod("web", ctr("app", app), ctr("none", none)))
	got := getPod(t, ns, "web")

	want := map[string]string{
		"containers/app":  appOnB, // the second mirror: the first lacks the image
		"containers/none": none,   // no mirror has it: kept as written
	}
	if diff := cmp.Diff(want, images(got)); diff != "" {
		t.Errorf("stored images (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"containers/app": app}, originalImages(t, got)); diff != "" {
		t.Errorf("annotation %s (-want +got):\n%s", originalImagesAnnotation, diff)
	}
	var choice map[string]string
	if raw, ok := got.Annotations[mirrorChoiceAnnotation]; !ok {
		t.Errorf("Pod has no %s annotation; annotations: %v", mirrorChoiceAnnotation, got.Annotations)
	} else if err := json.Unmarshal([]byte(raw), &choice); err != nil {
		t.Errorf("annotation %s is not a JSON object of strings: %v: %s", mirrorChoiceAnnotation, err, raw)
	} else if diff := cmp.Diff(map[string]string{"containers/app": "mirror 2 of 2"}, choice); diff != "" {
		t.Errorf("annotation %s (-want +got):\n%s", mirrorChoiceAnnotation, diff)
	}
}
