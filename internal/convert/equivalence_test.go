package convert_test

import (
	"os"
	"path"
	"strings"
	"testing"

	"github.com/distribution/reference"

	"github.com/detourhq/detour/internal/convert"
	"github.com/detourhq/detour/internal/rules"
)

// ketchesProxyImage is ketches/registry-proxy's getProxyImage, as its source
// has it: parse with the Docker conventions (a tag next to a digest is
// dropped), add ":latest" to a bare name, look the registry host up as is,
// and path.Join the proxy (or the host itself) with the rest.
func ketchesProxyImage(proxies map[string]string, image string) string {
	named, err := reference.ParseDockerRef(image)
	if err != nil {
		return image
	}
	registry := reference.Domain(named)
	name := strings.TrimLeft(reference.TagNameOnly(named).String(), registry)
	host := registry
	if p := proxies[registry]; p != "" {
		host = p
	}
	return path.Join(host, name)
}

// seedProxies are the proxies of the ConfigMap in ketches' README.
var seedProxies = map[string]string{
	"docker.io":            "docker.ketches.cn",
	"registry.k8s.io":      "k8s.ketches.cn",
	"quay.io":              "quay.ketches.cn",
	"ghcr.io":              "ghcr.ketches.cn",
	"gcr.io":               "gcr.ketches.cn",
	"k8s.gcr.io":           "k8s-gcr.ketches.cn",
	"docker.cloudsmith.io": "cloudsmith.ketches.cn",
}

const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func convertFile(t *testing.T, conv func([]byte) ([]byte, error), file string) *rules.Set {
	t.Helper()
	in, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out, err := conv(in)
	if err != nil {
		t.Fatal(err)
	}
	_, set := compile(t, out)
	return set
}

// TestKetchesSeedExamples: the examples in ketches' README come out as the
// README says.
func TestKetchesSeedExamples(t *testing.T) {
	set := convertFile(t, convert.FromKetches, "testdata/ketches/seed-configmap/input.yaml")
	for in, want := range map[string]string{
		"nginx:latest":                                    "docker.ketches.cn/library/nginx:latest",
		"ketches/registry-proxy:latest":                   "docker.ketches.cn/ketches/registry-proxy:latest",
		"registry.k8s.io/pause:3.9":                       "k8s.ketches.cn/pause:3.9",
		"registry.k8s.io/ingress-nginx/controller:v1.8.2": "k8s.ketches.cn/ingress-nginx/controller:v1.8.2",
	} {
		if got := set.Rewrite(in).Image; got != want {
			t.Errorf("%s -> %s, want %s", in, got, want)
		}
		if k := ketchesProxyImage(seedProxies, in); k != want {
			t.Errorf("the ketches model gives %s -> %s, the README %s", in, k, want)
		}
	}
}

// TestKetchesEquivalence compares the converted config with a model of
// ketches over many images: where ketches' result is what it meant, detour
// gives the same image; where ketches mangled it, detour differs exactly as
// the converted config's comments say.
func TestKetchesEquivalence(t *testing.T) {
	set := convertFile(t, convert.FromKetches, "testdata/ketches/seed-configmap/input.yaml")
	images := []string{
		"nginx:1.25", "library/nginx:1.25", "docker.io/library/nginx:1.25", "index.docker.io/library/nginx:1.25",
		"bitnami/redis:7.2", "docker.io/bitnami/redis:7.2", "registry.k8s.io/pause:3.9",
		"registry.k8s.io/ingress-nginx/controller:v1.8.2", "quay.io/prometheus/node-exporter:v1.7.0",
		"ghcr.io/a/b:1", "gcr.io/distroless/static:nonroot", "k8s.gcr.io/coredns:1.3.1",
		"docker.cloudsmith.io/org/repo/img:2", "localhost:5000/app:1", "registry.corp.example/team/app:3",
		"quay.io/a/b@" + digest,
		// ketches added ":latest" to these
		"nginx", "quay.io/a/b", "localhost:5000/app",
		// ketches dropped the tag of these
		"nginx:1.25@" + digest, "quay.io/a/b:1@" + digest,
		// ketches did not recognise these hosts
		"registry-1.docker.io/library/nginx:1", "Quay.IO/a/b:1", "quay.io:443/a/b:1",
	}
	for _, img := range images {
		d := set.Rewrite(img)
		k := ketchesProxyImage(seedProxies, img)
		named, err := reference.ParseNormalizedNamed(img)
		if err != nil {
			t.Fatalf("%s: %v", img, err)
		}
		_, tagged := named.(reference.Tagged)
		_, digested := named.(reference.Digested)
		host := reference.Domain(named)
		unrecognised := host != strings.ToLower(host) || strings.HasSuffix(host, ":443") || host == "registry-1.docker.io"
		switch {
		case unrecognised:
			if !d.Changed() || strings.HasPrefix(k, "docker.ketches.cn") || strings.HasPrefix(k, "quay.ketches.cn") {
				t.Errorf("%s: detour %s, ketches %s: want detour to mirror what ketches missed", img, d.Image, k)
			}
		case tagged && digested:
			// ketches dropped the tag; detour keeps tag and digest, under
			// the same mirror.
			tag := named.(reference.Tagged).Tag()
			dig := named.(reference.Digested).Digest().String()
			kr, err := reference.ParseNormalizedNamed(k)
			if err != nil {
				t.Fatalf("%s: ketches model gave %s: %v", img, k, err)
			}
			if _, kt := kr.(reference.Tagged); kt || !strings.HasSuffix(d.Image, ":"+tag+"@"+dig) ||
				strings.TrimSuffix(d.Image, ":"+tag+"@"+dig) != kr.Name() {
				t.Errorf("%s: detour %s, ketches %s: want the same mirror, detour keeping the tag", img, d.Image, k)
			}
		case !tagged && !digested:
			want := reference.TagNameOnly(named).String()
			if d.Changed() {
				want = d.Image + ":latest"
			}
			if k != want {
				t.Errorf("%s: detour %s, ketches %s: want the same image but for ketches' :latest", img, d.Image, k)
			}
		case d.Changed():
			if d.Image != k {
				t.Errorf("%s: detour %s, ketches %s", img, d.Image, k)
			}
		default:
			// Both leave it where it is; ketches spells it in full.
			if k != named.String() {
				t.Errorf("%s: detour leaves it, ketches %s", img, k)
			}
		}
	}
}

// cmEntry is one key: value of an image_mirrors dict, in order.
type cmEntry struct{ key, value string }

// containerMirrorPatch is the container-mirror Lambda's image_patch (the
// version with the "/" key): the first key, in dict order, that is a plain
// prefix of the image is replaced by its value; failing that, with a "/"
// key, an image written with docker.io/ or without a registry host goes
// under the "/" value.
func containerMirrorPatch(mirrors []cmEntry, image string) string {
	for _, e := range mirrors {
		if strings.HasPrefix(image, e.key) {
			return e.value + image[len(e.key):]
		}
	}
	for _, e := range mirrors {
		if e.key != "/" {
			continue
		}
		if strings.HasPrefix(image, "docker.io/") {
			return e.value + image[len("docker.io/"):]
		}
		if first := strings.Split(image, "/")[0]; !strings.Contains(first, ".") || !strings.Contains(image, "/") {
			return e.value + image
		}
	}
	return image
}

const ecr = "048912060910.dkr.ecr.cn-northwest-1.amazonaws.com.cn"

// nwcdMirrors is testdata/container-mirror/nwcd-lambda/input.txt.
var nwcdMirrors = []cmEntry{
	{"k8s.gcr.io/", ecr + "/gcr/google_containers/"},
	{"gcr.io/", ecr + "/gcr/"},
	{"asia.gcr.io/", ecr + "/gcr/"},
	{"eu.gcr.io/", ecr + "/gcr/"},
	{"us.gcr.io/", ecr + "/gcr/"},
	{"quay.io/", ecr + "/quay/"},
	{"602401143452.dkr.ecr.us-west-2.amazonaws.com/", ecr + "/amazonecr/"},
	{"/", ecr + "/dockerhub/"},
	{"direct.to/", ""},
}

// TestContainerMirrorEquivalence: the converted map rewrites as the Lambda
// did, except where the Lambda sent images to paths its mirror does not
// have, which detour fixes as the comments say.
func TestContainerMirrorEquivalence(t *testing.T) {
	set := convertFile(t, convert.FromContainerMirror, "testdata/container-mirror/nwcd-lambda/input.txt")
	same := []string{
		"k8s.gcr.io/coredns:1.3.1", "gcr.io/google_containers/kube-apiserver:v1.12.8", "gcr.io/a/b@" + digest,
		"asia.gcr.io/x/y:1", "quay.io/coreos/etcd:v3.5.9", "602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni:v1.6.0",
		"direct.to/busybox:latest", "direct.to/gcr.io/google_containers/pause-amd64:3.0",
		"nginx", "nginx:1.25", "bitnami/redis:7", "docker.io/bitnami/redis:7",
		"registry.k8s.io/pause:3.9", "ghcr.io/a/b:1", "registry.corp.example/app:1",
	}
	for _, img := range same {
		if got, want := set.Rewrite(img).Image, containerMirrorPatch(nwcdMirrors, img); got != want {
			t.Errorf("%s: detour %s, container-mirror %s", img, got, want)
		}
	}
	// The seed's example, and the Docker Hub paths the mirror really has.
	for in, want := range map[string]string{
		"k8s.gcr.io/coredns:1.3.1":      ecr + "/gcr/google_containers/coredns:1.3.1",
		"docker.io/library/nginx:1.25":  ecr + "/dockerhub/nginx:1.25", // container-mirror: .../dockerhub/library/nginx
		"library/nginx":                 ecr + "/dockerhub/nginx",
		"index.docker.io/library/nginx": ecr + "/dockerhub/nginx",
		"localhost:5000/x":              "localhost:5000/x", // container-mirror: .../dockerhub/localhost:5000/x
	} {
		if got := set.Rewrite(in).Image; got != want {
			t.Errorf("%s -> %s, want %s", in, got, want)
		}
	}
	if got := containerMirrorPatch(nwcdMirrors, "docker.io/library/nginx"); got != ecr+"/dockerhub/library/nginx" {
		t.Errorf("the container-mirror model gives %s for docker.io/library/nginx; peers.md says .../dockerhub/library/nginx", got)
	}
}

// TestContainerMirrorSeedReadme: the README's three-prefix map.
func TestContainerMirrorSeedReadme(t *testing.T) {
	set := convertFile(t, convert.FromContainerMirror, "testdata/container-mirror/seed-readme/input.txt")
	mirrors := []cmEntry{
		{"k8s.gcr.io/", "registry.aliyuncs.com/google_containers/"},
		{"gcr.io/", "mirror.corp.example/gcr/"},
		{"quay.io/", "mirror.corp.example/quay/"},
	}
	for _, img := range []string{
		"k8s.gcr.io/coredns:1.3.1", "gcr.io/google_containers/pause-amd64:3.0", "quay.io/a/b:1",
		"nginx", "registry.k8s.io/pause:3.9", "direct.to/busybox:latest",
	} {
		want := containerMirrorPatch(mirrors, img)
		if img == "direct.to/busybox:latest" {
			want = "busybox:latest" // the webhook's documented escape, kept
		}
		if got := set.Rewrite(img).Image; got != want {
			t.Errorf("%s: detour %s, container-mirror %s", img, got, want)
		}
	}
}

// TestKetchesNamespaces: the converted namespace filter admits exactly the
// namespaces ketches' webhook selector admitted.
func TestKetchesNamespaces(t *testing.T) {
	for _, tc := range []struct {
		file    string
		allowed map[string]bool
	}{
		{"testdata/ketches/seed-configmap/input.yaml", map[string]bool{
			"default": true, "team-a": true, "kube-system": false, "kube-public": false, "kube-node-lease": false, "registry-proxy": false}},
		{"testdata/ketches/manifests-stream/input.yaml", map[string]bool{
			"team-a": true, "team-b": true, "default": false, "kube-system": false}},
		{"testdata/ketches/bare-config/input.yaml", map[string]bool{
			"default": true, "kube-system": false, "kube-public": true, "kube-node-lease": true}},
		{"testdata/ketches/namespaces/input.yaml", map[string]bool{
			"team-x": true, "team-*": false, "kube-system": false, "kube-public": true}},
		{"testdata/ketches/selectors-unknown-keys/input.yaml", map[string]bool{
			"default": true, "kube-system": true}},
	} {
		in, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		out, err := convert.FromKetches(in)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := compile(t, out)
		for ns, want := range tc.allowed {
			if got := cfg.Namespaces.Allows(ns); got != want {
				t.Errorf("%s: namespace %s allowed = %v, want %v", tc.file, ns, got, want)
			}
		}
	}
}

// TestKetchesEnabled: enabled carries over; a missing key is written true
// (see the comment in the output), false stays false.
func TestKetchesEnabled(t *testing.T) {
	for file, want := range map[string]bool{
		"testdata/ketches/seed-configmap/input.yaml":         true,
		"testdata/ketches/disabled/input.yaml":               false,
		"testdata/ketches/missing-enabled/input.yaml":        true,
		"testdata/ketches/selectors-unknown-keys/input.yaml": true, // enabled: yes
	} {
		in, _ := os.ReadFile(file)
		out, err := convert.FromKetches(in)
		if err != nil {
			t.Fatal(err)
		}
		cfg, set := compile(t, out)
		if cfg.Enabled != want {
			t.Errorf("%s: enabled %v, want %v", file, cfg.Enabled, want)
		}
		if len(cfg.Presets) != 0 {
			t.Errorf("%s: presets %v, want none", file, cfg.Presets)
		}
		if set.EscapePrefix() != rules.DefaultEscapePrefix {
			t.Errorf("%s: escape prefix %q", file, set.EscapePrefix())
		}
	}
}
