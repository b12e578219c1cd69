package hosts_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/detourhq/detour/internal/cli"
	"github.com/detourhq/detour/internal/regtest"
)

// TestRealContainerdPullsThroughGeneratedHosts is the end-to-end check of the
// containerd format: `detour hosts containerd --out DIR` from a config, then
// the real containerd 1.6 from Debian pulls docker.io, registry.k8s.io and
// quay.io images with `ctr images pull --hosts-dir DIR`, and a real
// docker-registry on 127.0.0.1 serves them. The mirror answers, so nothing
// leaves the machine (containerd would fall back to the real registry only if
// every mirror failed, and the test would then fail on the registry's log).
func TestRealContainerdPullsThroughGeneratedHosts(t *testing.T) {
	ctrd := startContainerd(t)
	reg := regtest.Start(t, regtest.Options{})

	hub := newTestImage(t, "from docker.io via detour")
	k8s := newTestImage(t, "from registry.k8s.io via detour")
	quay := newTestImage(t, "from quay.io via detour")
	push(t, reg.URL, "library/detourtest", "v1", hub)
	push(t, reg.URL, "k8smirror/pause", "TEST", k8s)
	push(t, reg.URL, "quaymirror/team/app", "v2", quay)

	// docker.io: the mirror is the registry itself; registry.k8s.io: a mirror
	// with a path prefix; quay.io: a chain whose first mirror is down.
	dead := closedPort(t)
	cfgFile := filepath.Join(t.TempDir(), "detour.yaml")
	cfg := fmt.Sprintf(`presets: []
mirrors:
  - from: docker.io
    to: %[1]s
  - from: registry.k8s.io
    to: %[1]s/k8smirror
  - from: quay.io
    to: [%[2]s/nothing-here, %[1]s/quaymirror]
`, reg.Host, dead)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	hostsDir := filepath.Join(t.TempDir(), "certs.d")
	var stdout, stderr bytes.Buffer
	code := cli.Run(context.Background(), []string{"hosts", "containerd", "--config", cfgFile, "--out", hostsDir}, nil, &stdout, &stderr)
	if code != 0 || stderr.Len() != 0 {
		t.Fatalf("detour hosts containerd: exit %d\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}
	for _, f := range []string{"docker.io", "registry.k8s.io", "quay.io"} {
		b, err := os.ReadFile(filepath.Join(hostsDir, f, "hosts.toml"))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s/hosts.toml:\n%s", f, b)
	}

	for _, tc := range []struct {
		ref        string
		img        testImage
		mirrorRepo string // where the image lies in the registry
		tag, ns    string
	}{
		{"docker.io/library/detourtest:v1", hub, "library/detourtest", "v1", "docker.io"},
		{"registry.k8s.io/pause:TEST", k8s, "k8smirror/pause", "TEST", "registry.k8s.io"},
		{"quay.io/team/app:v2", quay, "quaymirror/team/app", "v2", "quay.io"},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			// containerd resolves the tag (HEAD), then GETs the manifest by
			// digest and the blobs, each with ?ns=SOURCE-REGISTRY: the mark
			// of a request made for a hosts.toml mirror.
			resolve := " /v2/" + tc.mirrorRepo + "/manifests/" + tc.tag + "?ns=" + tc.ns + " "
			layer := "GET /v2/" + tc.mirrorRepo + "/blobs/" + sha(tc.img.layer) + "?ns=" + tc.ns + " "
			before := countLines(reg.Log(), resolve, "containerd/")
			out, err := ctrd.ctr(t, "images", "pull", "--hosts-dir", hostsDir, "--platform", "linux/amd64", tc.ref)
			t.Logf("ctr images pull %s:\n%s", tc.ref, out)
			if err != nil {
				t.Fatalf("ctr images pull %s: %v", tc.ref, err)
			}
			if !strings.Contains(out, "unpacking linux/amd64 "+tc.img.digest) || !strings.Contains(out, "done") {
				t.Errorf("the pull did not unpack manifest %s", tc.img.digest)
			}
			log := reg.Log()
			if countLines(log, resolve, "containerd/") <= before {
				t.Errorf("the registry did not log containerd resolving %q: the pull did not come through the mirror", resolve)
			}
			if countLines(log, layer, "containerd/") == 0 {
				t.Errorf("the registry did not log containerd fetching the layer: %q", layer)
			}
			ls, err := ctrd.ctr(t, "images", "ls", "name=="+tc.ref)
			if err != nil || !strings.Contains(ls, tc.img.digest) {
				t.Errorf("ctr images ls: %v\n%s\nwant %s with digest %s", err, ls, tc.ref, tc.img.digest)
			}
		})
	}
}
