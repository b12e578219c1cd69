package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run executes the CLI like main does, with stdin and captured streams.
func run(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRewriteImagesPrintsOneLineEachInOrder(t *testing.T) {
	t.Setenv("DETOUR_CONFIG", "")
	code, out, errs := run(t, "", "rewrite", "nginx:1.25", "direct.to/busybox:latest", "harbor.corp/app:1", "NOT VALID", "registry.k8s.io/pause:3.9")
	want := "docker.m.daocloud.io/library/nginx:1.25\nbusybox:latest\nharbor.corp/app:1\nNOT VALID\nk8s.m.daocloud.io/pause:3.9\n"
	if code != 0 || out != want || errs != "" {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s\nwant stdout:\n%s", code, out, errs, want)
	}
}

func TestRewriteFlagsAfterImagesAndConfigFromEnv(t *testing.T) {
	cfg := writeFile(t, "detour.yaml", "presets: []\nmirrors:\n- from: quay.io\n  to: [quay.corp, quay2.corp]\n")
	t.Setenv("DETOUR_CONFIG", cfg)
	code, out, _ := run(t, "", "rewrite", "quay.io/a/b:1", "--explain")
	if code != 0 || !strings.HasPrefix(out, "quay.corp/a/b:1\trewritten by quay.io") || !strings.Contains(out, "fallback chain [quay.corp/a/b:1 quay2.corp/a/b:1]") {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	// --config beats DETOUR_CONFIG.
	code, out, _ = run(t, "", "rewrite", "--config", writeFile(t, "other.yaml", "presets: []\n"), "quay.io/a/b:1")
	if code != 0 || out != "quay.io/a/b:1\n" {
		t.Fatalf("--config over DETOUR_CONFIG: exit %d, %q", code, out)
	}
}

func TestRewriteManifestFromStdinKeepsEverythingButImages(t *testing.T) {
	t.Setenv("DETOUR_CONFIG", "")
	in := "# a comment that must survive\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p   # trailing comment\nspec:\n  containers:\n  - name: c\n    image: \"nginx:1.25\"\n    env: [{name: X, value: \"nginx\"}]\n"
	code, out, errs := run(t, in, "rewrite", "-f", "-", "--explain")
	want := strings.Replace(in, `"nginx:1.25"`, `"docker.m.daocloud.io/library/nginx:1.25"`, 1)
	if code != 0 || out != want {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr: %s", code, out, errs)
	}
	if !strings.Contains(errs, "nginx:1.25 -> docker.m.daocloud.io/library/nginx:1.25") {
		t.Fatalf("--explain should list the change on stderr, got %q", errs)
	}
}

func TestRewriteManifestErrorWritesNothing(t *testing.T) {
	t.Setenv("DETOUR_CONFIG", "")
	code, out, errs := run(t, "kind: Pod\nspec:\n  containers:\n  - image: [unclosed\n", "rewrite", "-f", "-")
	if code != 1 || out != "" || errs == "" {
		t.Fatalf("exit %d, stdout %q, stderr %q: want exit 1, empty stdout, an error", code, out, errs)
	}
}

func TestRewriteUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"rewrite"}, {"rewrite", "-f", "x.yaml", "nginx"}, {"rewrite", "--nope"}} {
		if code, _, errs := run(t, "", args...); code != 2 || errs == "" {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message", args, code, errs)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := writeFile(t, "good.yaml", "mirrors:\n- from: quay.io\n  to: quay.corp\n")
	if code, out, _ := run(t, "", "config", "validate", good); code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("good config: exit %d, %q", code, out)
	}
	bad := writeFile(t, "bad.yaml", "enabled: yes\nmirrors:\n- from: quay.io\n  to: \"bad to\"\n")
	code, out, errs := run(t, "", "config", "validate", bad)
	want := bad + ":1: enabled: want true or false, got str \"yes\"\n" + bad + ":3: to \"bad to\": not a valid registry host[:port][/path]\n"
	if code != 1 || out != "" || errs != want {
		t.Fatalf("bad config: exit %d\nstderr:\n%s\nwant:\n%s", code, errs, want)
	}
}

func TestConfigConvertKetchesSwitchesInOneStep(t *testing.T) {
	ketches := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: registry-proxy-config\n  namespace: registry-proxy\ndata:\n  config.yaml: |\n    enabled: true\n    proxies:\n      docker.io: docker.ketches.cn\n      registry.k8s.io: k8s.ketches.cn\n    excludeNamespaces:\n    - kube-system\n"
	code, converted, errs := run(t, "", "config", "convert", "--from", "ketches", writeFile(t, "cm.yaml", ketches))
	if code != 0 {
		t.Fatalf("convert: exit %d: %s", code, errs)
	}
	cfg := writeFile(t, "detour.yaml", converted)
	if code, _, errs := run(t, "", "config", "validate", cfg); code != 0 {
		t.Fatalf("converted config does not validate: %s\n%s", errs, converted)
	}
	code, out, _ := run(t, "", "rewrite", "--config", cfg, "nginx:latest", "registry.k8s.io/pause:3.9", "quay.io/a/b")
	if want := "docker.ketches.cn/library/nginx:latest\nk8s.ketches.cn/pause:3.9\nquay.io/a/b\n"; code != 0 || out != want {
		t.Fatalf("converted rules: %q, want %q (the seed's own examples; no preset added)", out, want)
	}
}

func TestConfigConvertContainerMirrorFromStdin(t *testing.T) {
	py := "image_mirrors = {\n    'k8s.gcr.io/': 'mirror.cn/gcr/google_containers/',\n    'quay.io/': 'mirror.cn/quay/',  # comment\n}\n"
	code, converted, errs := run(t, py, "config", "convert", "--from", "container-mirror", "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	code, out, _ := run(t, "", "rewrite", "--config", writeFile(t, "d.yaml", converted), "k8s.gcr.io/coredns:1.3.1", "quay.io/coreos/flannel:v0.11.0")
	if want := "mirror.cn/gcr/google_containers/coredns:1.3.1\nmirror.cn/quay/coreos/flannel:v0.11.0\n"; code != 0 || out != want {
		t.Fatalf("got %q, want %q", out, want)
	}
}

func TestVersionAndUnknownCommand(t *testing.T) {
	if code, out, _ := run(t, "", "version"); code != 0 || !strings.Contains(out, "go go1.") {
		t.Fatalf("version: %d %q", code, out)
	}
	if code, _, errs := run(t, "", "frobnicate"); code != 2 || !strings.Contains(errs, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: %d %q", code, errs)
	}
}
