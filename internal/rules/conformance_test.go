package rules_test

import (
	"strings"
	"testing"

	"github.com/detourhq/detour/internal/config"
	"github.com/detourhq/detour/internal/rules"
)

const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// customYAML exercises what the presets do not: path prefixes at segment
// boundaries, chains, ports, IPv6, the wildcard and its placeholder, Docker
// Hub namespaces as mirrors.
const customYAML = `
presets: []
mirrors:
  - from: docker.io
    to: hub.mirror.corp
  - from: docker.io/bitnami
    to: [bitnami.mirror.corp/charts, hub.mirror.corp/bitnami]
  - from: gcr.io/google-containers
    to: registry.aliyuncs.com/google_containers
  - from: gcr.io
    to: gcr.mirror.corp:5000/gcr
  - from: quay.io
    to: [quay.m.daocloud.io, quay.mirror.corp]
  - from: LOCALHOST:5000
    to: "[fd00::1]:5000/local"
  - from: "[::1]:5001"
    to: mirror.corp/v6
  - from: k8s.gcr.io
    to: googlecontainersmirror
  - from: ghcr.io/org/app
    to: apps.mirror.corp/app
  - from: "*"
    to: m.daocloud.io/{registry}
`

const wildcardOnlyYAML = `
presets: []
escapePrefix: ""
mirrors:
  - from: "*"
    to: cache.corp/{registry}
`

// cases is the conformance table: every rewrite step of the spec, across the
// presets and custom configs.
var cases = []struct {
	config string       // key of configs below
	in     string       // image as written in a Pod
	want   string       // image to admit
	reason rules.Reason // why
}{
	// The embedded default: daocloud preset, escape "direct.to/".
	{"default", "nginx", "docker.m.daocloud.io/library/nginx", rules.Rewritten},
	{"default", "nginx:1.25", "docker.m.daocloud.io/library/nginx:1.25", rules.Rewritten},
	{"default", "nginx:latest", "docker.m.daocloud.io/library/nginx:latest", rules.Rewritten},
	{"default", "nginx@" + digest, "docker.m.daocloud.io/library/nginx@" + digest, rules.Rewritten},
	{"default", "nginx:1.25@" + digest, "docker.m.daocloud.io/library/nginx:1.25@" + digest, rules.Rewritten},
	{"default", "library/nginx:1.25", "docker.m.daocloud.io/library/nginx:1.25", rules.Rewritten},
	{"default", "docker.io/nginx", "docker.m.daocloud.io/library/nginx", rules.Rewritten},
	{"default", "docker.io/library/nginx:1.25", "docker.m.daocloud.io/library/nginx:1.25", rules.Rewritten},
	{"default", "index.docker.io/library/nginx", "docker.m.daocloud.io/library/nginx", rules.Rewritten},
	{"default", "index.docker.io/nginx:1", "docker.m.daocloud.io/library/nginx:1", rules.Rewritten},
	{"default", "registry-1.docker.io/library/nginx:1", "docker.m.daocloud.io/library/nginx:1", rules.Rewritten},
	{"default", "registry-1.docker.io/nginx", "docker.m.daocloud.io/library/nginx", rules.Rewritten},
	{"default", "Docker.IO/library/nginx", "docker.m.daocloud.io/library/nginx", rules.Rewritten},
	{"default", "DOCKER.io/nginx:1", "docker.m.daocloud.io/library/nginx:1", rules.Rewritten},
	{"default", "docker.io:443/library/nginx", "docker.m.daocloud.io/library/nginx", rules.Rewritten},
	{"default", "bitnami/redis:7.2", "docker.m.daocloud.io/bitnami/redis:7.2", rules.Rewritten},
	{"default", "ketches/registry-proxy:latest", "docker.m.daocloud.io/ketches/registry-proxy:latest", rules.Rewritten},
	{"default", "docker.io/bitnami/redis", "docker.m.daocloud.io/bitnami/redis", rules.Rewritten},
	{"default", "a/b/c/d:1", "docker.m.daocloud.io/a/b/c/d:1", rules.Rewritten},
	{"default", "localhost/nginx", "localhost/nginx", rules.NoMatch},
	{"default", "localhost:5000/x", "localhost:5000/x", rules.NoMatch},
	{"default", "localhost:5000/x:latest", "localhost:5000/x:latest", rules.NoMatch},
	{"default", "registry.k8s.io/pause:3.9", "k8s.m.daocloud.io/pause:3.9", rules.Rewritten},
	{"default", "registry.k8s.io/ingress-nginx/controller:v1.8.2", "k8s.m.daocloud.io/ingress-nginx/controller:v1.8.2", rules.Rewritten},
	{"default", "registry.k8s.io/coredns/coredns:v1.11.1", "k8s.m.daocloud.io/coredns/coredns:v1.11.1", rules.Rewritten},
	{"default", "REGISTRY.K8S.IO/pause:3.9", "k8s.m.daocloud.io/pause:3.9", rules.Rewritten},
	{"default", "registry.k8s.io:443/pause", "k8s.m.daocloud.io/pause", rules.Rewritten},
	{"default", "registry.k8s.io:5000/pause", "registry.k8s.io:5000/pause", rules.NoMatch},
	{"default", "k8s.gcr.io/coredns:1.3.1", "k8s-gcr.m.daocloud.io/coredns:1.3.1", rules.Rewritten},
	{"default", "gcr.io/google_containers/kube-apiserver:v1.12.8", "gcr.m.daocloud.io/google_containers/kube-apiserver:v1.12.8", rules.Rewritten},
	{"default", "gcr.io/distroless/static:nonroot", "gcr.m.daocloud.io/distroless/static:nonroot", rules.Rewritten},
	{"default", "us-docker.pkg.dev/x/y:1", "us-docker.pkg.dev/x/y:1", rules.NoMatch},
	{"default", "eu.gcr.io/project/app", "eu.gcr.io/project/app", rules.NoMatch},
	{"default", "ghcr.io/fluxcd/source-controller:v1.2.0", "ghcr.m.daocloud.io/fluxcd/source-controller:v1.2.0", rules.Rewritten},
	{"default", "quay.io/prometheus/node-exporter:v0.18.1", "quay.m.daocloud.io/prometheus/node-exporter:v0.18.1", rules.Rewritten},
	{"default", "quay.io:443/prometheus/node-exporter", "quay.m.daocloud.io/prometheus/node-exporter", rules.Rewritten},
	{"default", "Quay.IO/coreos/etcd:v3.5.0", "quay.m.daocloud.io/coreos/etcd:v3.5.0", rules.Rewritten},
	{"default", "mcr.microsoft.com/dotnet/runtime:8.0", "mcr.m.daocloud.io/dotnet/runtime:8.0", rules.Rewritten},
	{"default", "docker.elastic.co/elasticsearch/elasticsearch:8.11.0", "elastic.m.daocloud.io/elasticsearch/elasticsearch:8.11.0", rules.Rewritten},
	{"default", "nvcr.io/nvidia/cuda:12.2.0-base-ubuntu22.04", "nvcr.m.daocloud.io/nvidia/cuda:12.2.0-base-ubuntu22.04", rules.Rewritten},
	{"default", "harbor.corp.example/team/app:1.0", "harbor.corp.example/team/app:1.0", rules.NoMatch},
	{"default", "10.0.0.1:5000/app", "10.0.0.1:5000/app", rules.NoMatch},
	{"default", "[::1]:5000/app:1", "[::1]:5000/app:1", rules.NoMatch},
	{"default", "[2001:db8::1]/app", "[2001:db8::1]/app", rules.NoMatch},
	{"default", "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1", "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1", rules.NoMatch},
	// Escape prefix.
	{"default", "direct.to/busybox:latest", "busybox:latest", rules.Escaped},
	{"default", "direct.to/gcr.io/google_containers/pause-amd64:3.0", "gcr.io/google_containers/pause-amd64:3.0", rules.Escaped},
	{"default", "direct.to/nginx", "nginx", rules.Escaped},
	{"default", "direct.to/registry.k8s.io/pause@" + digest, "registry.k8s.io/pause@" + digest, rules.Escaped},
	{"default", "direct.to/quay.io/a/b:1", "quay.io/a/b:1", rules.Escaped},
	{"default", "Direct.to/busybox", "Direct.to/busybox", rules.NoMatch},
	{"default", "direct.to.example/busybox", "direct.to.example/busybox", rules.NoMatch},
	// Already mirrored: idempotence and reinvocation.
	{"default", "docker.m.daocloud.io/library/nginx:1.25", "docker.m.daocloud.io/library/nginx:1.25", rules.AlreadyMirrored},
	{"default", "docker.m.daocloud.io/bitnami/redis", "docker.m.daocloud.io/bitnami/redis", rules.AlreadyMirrored},
	{"default", "k8s.m.daocloud.io/pause:3.9", "k8s.m.daocloud.io/pause:3.9", rules.AlreadyMirrored},
	{"default", "K8S.m.daocloud.io/pause:3.9", "K8S.m.daocloud.io/pause:3.9", rules.AlreadyMirrored},
	{"default", "quay.m.daocloud.io/prometheus/node-exporter", "quay.m.daocloud.io/prometheus/node-exporter", rules.AlreadyMirrored},
	{"default", "elastic.m.daocloud.io/elasticsearch/elasticsearch:8.11.0", "elastic.m.daocloud.io/elasticsearch/elasticsearch:8.11.0", rules.AlreadyMirrored},
	{"default", "m.daocloud.io/docker.io/library/nginx", "m.daocloud.io/docker.io/library/nginx", rules.NoMatch},
	// Invalid references: left alone, byte for byte.
	{"default", "", "", rules.Invalid},
	{"default", "NGINX", "NGINX", rules.Invalid},
	{"default", "nginx:", "nginx:", rules.Invalid},
	{"default", "nginx:1.25:2", "nginx:1.25:2", rules.Invalid},
	{"default", "nginx@sha256:abc", "nginx@sha256:abc", rules.Invalid},
	{"default", "nginx@sha256:" + strings.Repeat("A", 64), "nginx@sha256:" + strings.Repeat("A", 64), rules.Invalid},
	{"default", "docker.io/Library/nginx", "docker.io/Library/nginx", rules.Invalid},
	{"default", " nginx", " nginx", rules.Invalid},
	{"default", "nginx ", "nginx ", rules.Invalid},
	{"default", "quay.io//a", "quay.io//a", rules.Invalid},
	{"default", "quay.io/a/", "quay.io/a/", rules.Invalid},
	{"default", "-nginx", "-nginx", rules.Invalid},
	{"default", "ngin__x_", "ngin__x_", rules.Invalid},
	{"default", "nginx:-1", "nginx:-1", rules.Invalid},
	{"default", "nginx:" + strings.Repeat("a", 129), "nginx:" + strings.Repeat("a", 129), rules.Invalid},
	{"default", strings.Repeat("a", 64), strings.Repeat("a", 64), rules.Invalid},
	{"default", "quay.io/" + strings.Repeat("a", 256), "quay.io/" + strings.Repeat("a", 256), rules.Invalid},
	{"default", "ünïcode/app", "ünïcode/app", rules.Invalid},
	{"default", "registry.k8s.io/pause:3.9\n", "registry.k8s.io/pause:3.9\n", rules.Invalid},
	{"default", "https://registry.k8s.io/pause", "https://registry.k8s.io/pause", rules.Invalid},
	{"default", "-registry.k8s.io/pause", "-registry.k8s.io/pause", rules.Invalid},
	// Separators that the grammar allows.
	{"default", "a__b/c--d/e.f_g:v1.0_rc-1", "docker.m.daocloud.io/a__b/c--d/e.f_g:v1.0_rc-1", rules.Rewritten},
	{"default", "quay.io/a---b/c:TAG_Upper", "quay.m.daocloud.io/a---b/c:TAG_Upper", rules.Rewritten},
	{"default", "nginx:_x", "docker.m.daocloud.io/library/nginx:_x", rules.Rewritten},
	// Aliyun preset: the flat google_containers namespace kubeadm users need.
	{"aliyun", "registry.k8s.io/coredns/coredns:v1.11.1", "registry.aliyuncs.com/google_containers/coredns:v1.11.1", rules.Rewritten},
	{"aliyun", "registry.k8s.io/kube-apiserver:v1.30.0", "registry.aliyuncs.com/google_containers/kube-apiserver:v1.30.0", rules.Rewritten},
	{"aliyun", "registry.k8s.io/pause:3.9", "registry.aliyuncs.com/google_containers/pause:3.9", rules.Rewritten},
	{"aliyun", "k8s.gcr.io/kube-proxy:v1.18.0", "registry.aliyuncs.com/google_containers/kube-proxy:v1.18.0", rules.Rewritten},
	{"aliyun", "k8s.gcr.io/coredns/coredns:v1.8.0", "registry.aliyuncs.com/google_containers/coredns:v1.8.0", rules.Rewritten},
	{"aliyun", "registry.k8s.io/corednsx/y:1", "registry.aliyuncs.com/google_containers/corednsx/y:1", rules.Rewritten},
	{"aliyun", "nginx", "nginx", rules.NoMatch},
	{"aliyun", "quay.io/a/b", "quay.io/a/b", rules.NoMatch},
	{"aliyun", "registry.aliyuncs.com/google_containers/pause:3.9", "registry.aliyuncs.com/google_containers/pause:3.9", rules.AlreadyMirrored},
	{"aliyun", "registry.aliyuncs.com/other/app", "registry.aliyuncs.com/other/app", rules.NoMatch},
	// NWCD preset: container-mirror's ECR layout.
	{"nwcd", "k8s.gcr.io/coredns:1.3.1", ecr + "/gcr/google_containers/coredns:1.3.1", rules.Rewritten},
	{"nwcd", "gcr.io/google_containers/kube-apiserver:v1.12.8", ecr + "/gcr/google_containers/kube-apiserver:v1.12.8", rules.Rewritten},
	{"nwcd", "gcr.io/google-containers/kube-proxy:v1.18.0", ecr + "/gcr/google_containers/kube-proxy:v1.18.0", rules.Rewritten},
	{"nwcd", "gcr.io/google-containers-x/y", ecr + "/gcr/google-containers-x/y", rules.Rewritten},
	{"nwcd", "gcr.io/istio-release/pilot:1.20", ecr + "/gcr/istio-release/pilot:1.20", rules.Rewritten},
	{"nwcd", "quay.io/coreos/flannel:v0.11.0", ecr + "/quay/coreos/flannel:v0.11.0", rules.Rewritten},
	{"nwcd", "nginx:1.25", ecr + "/dockerhub/nginx:1.25", rules.Rewritten},
	{"nwcd", "docker.io/library/busybox", ecr + "/dockerhub/busybox", rules.Rewritten},
	{"nwcd", "bitnami/redis:7", ecr + "/dockerhub/bitnami/redis:7", rules.Rewritten},
	{"nwcd", "registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9", rules.NoMatch},
	{"nwcd", ecr + "/dockerhub/nginx:1.25", ecr + "/dockerhub/nginx:1.25", rules.AlreadyMirrored},
	{"nwcd", ecr + "/gcr/google_containers/pause:3.1", ecr + "/gcr/google_containers/pause:3.1", rules.AlreadyMirrored},
	// Custom rules: longest prefix at segment boundaries, chains, ports, IPv6.
	{"custom", "nginx", "hub.mirror.corp/library/nginx", rules.Rewritten},
	{"custom", "bitnami/redis:7", "bitnami.mirror.corp/charts/redis:7", rules.Rewritten},
	{"custom", "docker.io/bitnami/redis@" + digest, "bitnami.mirror.corp/charts/redis@" + digest, rules.Rewritten},
	{"custom", "bitnamix/redis", "hub.mirror.corp/bitnamix/redis", rules.Rewritten},
	{"custom", "bitnami", "hub.mirror.corp/library/bitnami", rules.Rewritten},
	{"custom", "gcr.io/google-containers/pause:3.1", "registry.aliyuncs.com/google_containers/pause:3.1", rules.Rewritten},
	{"custom", "gcr.io/google-containers-x/y", "gcr.mirror.corp:5000/gcr/google-containers-x/y", rules.Rewritten},
	{"custom", "gcr.io/google-containers", "registry.aliyuncs.com/google_containers", rules.Rewritten},
	{"custom", "gcr.io/google-containers:1", "registry.aliyuncs.com/google_containers:1", rules.Rewritten},
	{"custom", "gcr.io/distroless/base", "gcr.mirror.corp:5000/gcr/distroless/base", rules.Rewritten},
	{"custom", "quay.io/a/b:1", "quay.m.daocloud.io/a/b:1", rules.Rewritten},
	{"custom", "quay.mirror.corp/a/b:1", "quay.mirror.corp/a/b:1", rules.AlreadyMirrored},
	{"custom", "localhost:5000/app:1", "[fd00::1]:5000/local/app:1", rules.Rewritten},
	{"custom", "LocalHost:5000/app", "[fd00::1]:5000/local/app", rules.Rewritten},
	{"custom", "localhost:5001/app", "m.daocloud.io/localhost:5001/app", rules.Unrepresentable},
	{"custom", "[::1]:5001/app:2", "mirror.corp/v6/app:2", rules.Rewritten},
	{"custom", "[fd00::1]:5000/local/app", "[fd00::1]:5000/local/app", rules.AlreadyMirrored},
	{"custom", "k8s.gcr.io/kube-proxy:v1.18.0", "googlecontainersmirror/kube-proxy:v1.18.0", rules.Rewritten},
	{"custom", "googlecontainersmirror/kube-proxy:v1.18.0", "googlecontainersmirror/kube-proxy:v1.18.0", rules.AlreadyMirrored},
	{"custom", "docker.io/googlecontainersmirror/pause", "docker.io/googlecontainersmirror/pause", rules.AlreadyMirrored},
	{"custom", "k8s.gcr.io", "hub.mirror.corp/library/k8s.gcr.io", rules.Rewritten}, // a Docker Hub image named k8s.gcr.io
	{"custom", "ghcr.io/org/app:v1", "apps.mirror.corp/app:v1", rules.Rewritten},
	{"custom", "ghcr.io/org/app/sidecar:v1", "apps.mirror.corp/app/sidecar:v1", rules.Rewritten},
	{"custom", "ghcr.io/org/application:v1", "m.daocloud.io/ghcr.io/org/application:v1", rules.Rewritten},
	{"custom", "registry.k8s.io/pause:3.9", "m.daocloud.io/registry.k8s.io/pause:3.9", rules.Rewritten},
	{"custom", "Registry.K8s.IO/pause", "m.daocloud.io/registry.k8s.io/pause", rules.Rewritten},
	{"custom", "harbor.corp:8443/x/y", "harbor.corp:8443/x/y", rules.Unrepresentable},
	{"custom", "m.daocloud.io/quay.io/a/b", "m.daocloud.io/quay.io/a/b", rules.AlreadyMirrored},
	{"custom", "hub.mirror.corp/library/nginx", "hub.mirror.corp/library/nginx", rules.AlreadyMirrored},
	{"custom", "direct.to/nginx", "nginx", rules.Escaped},
	// A wildcard and nothing else, escape off.
	{"wildcard", "nginx", "cache.corp/docker.io/library/nginx", rules.Rewritten},
	{"wildcard", "quay.io/a/b:1", "cache.corp/quay.io/a/b:1", rules.Rewritten},
	{"wildcard", "direct.to/nginx", "cache.corp/direct.to/nginx", rules.Rewritten},
	{"wildcard", "cache.corp/quay.io/a/b", "cache.corp/quay.io/a/b", rules.AlreadyMirrored},
	{"wildcard", "cache.corp/anything", "cache.corp/anything", rules.AlreadyMirrored},
	{"wildcard", "127.0.0.1:5000/a", "127.0.0.1:5000/a", rules.Unrepresentable},
	{"wildcard", "[::1]/a", "[::1]/a", rules.Unrepresentable},
}

const ecr = "048912060910.dkr.ecr.cn-northwest-1.amazonaws.com.cn"

func compileYAML(t testing.TB, y string) *rules.Set {
	t.Helper()
	c, err := config.ParseBytes([]byte(y))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	s, err := c.Compile()
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return s
}

func configs(t testing.TB) map[string]*rules.Set {
	def, err := config.Default().Compile()
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*rules.Set{
		"default":  def,
		"aliyun":   compileYAML(t, "presets: [aliyun]\n"),
		"nwcd":     compileYAML(t, "presets: [nwcd]\n"),
		"custom":   compileYAML(t, customYAML),
		"wildcard": compileYAML(t, wildcardOnlyYAML),
	}
}

func TestConformance(t *testing.T) {
	if len(cases) < 120 {
		t.Fatalf("the conformance table has %d cases; the contract asks for at least 120", len(cases))
	}
	sets := configs(t)
	for _, tc := range cases {
		t.Run(tc.config+"/"+tc.in, func(t *testing.T) {
			d := sets[tc.config].Rewrite(tc.in)
			wantImage := tc.want
			if tc.reason == rules.Unrepresentable {
				wantImage = tc.in // tc.want documents what the rule would have built
			}
			if d.Image != wantImage || d.Reason != tc.reason {
				t.Fatalf("Rewrite(%q) = %q (%v, err %v), want %q (%v)", tc.in, d.Image, d.Reason, d.Err, wantImage, tc.reason)
			}
			if d.Input != tc.in {
				t.Errorf("Input = %q, want %q", d.Input, tc.in)
			}
			if (d.Reason == rules.Invalid || d.Reason == rules.Unrepresentable) != (d.Err != nil) {
				t.Errorf("reason %v with err %v: Invalid and Unrepresentable, and only they, carry an error", d.Reason, d.Err)
			}
			if (d.Reason == rules.Rewritten || d.Reason == rules.Unrepresentable) != (d.Rule != nil) {
				t.Errorf("reason %v with rule %v", d.Reason, d.Rule)
			}
			if d.Changed() != (d.Reason == rules.Rewritten || d.Reason == rules.Escaped) {
				t.Errorf("Changed() = %v for reason %v", d.Changed(), d.Reason)
			}
			if d.Reason == rules.Rewritten {
				if chain := d.Chain(); len(chain) == 0 || chain[0] != d.Image {
					t.Errorf("Chain() = %v, want it to start with %q", chain, d.Image)
				}
			}
			// A second pass changes nothing (the escape is the one exception:
			// its output is an ordinary image again, by definition).
			if d.Reason != rules.Escaped {
				if again := sets[tc.config].Rewrite(d.Image); again.Image != d.Image {
					t.Errorf("not idempotent: %q -> %q -> %q", tc.in, d.Image, again.Image)
				}
			}
		})
	}
}

func TestChainKeepsOrder(t *testing.T) {
	s := configs(t)["custom"]
	d := s.Rewrite("quay.io/prometheus/node-exporter:v1.7.0")
	want := []string{"quay.m.daocloud.io/prometheus/node-exporter:v1.7.0", "quay.mirror.corp/prometheus/node-exporter:v1.7.0"}
	if got := d.Chain(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("Chain() = %v, want %v", got, want)
	}
	if d := s.Rewrite("nginx"); d.Chain() == nil || len(d.Chain()) != 1 {
		t.Fatalf("single mirror: Chain() = %v", d.Chain())
	}
	if d := s.Rewrite("direct.to/nginx"); d.Chain() != nil {
		t.Fatalf("escaped: Chain() = %v, want nil", d.Chain())
	}
}

func TestOrderInFileDoesNotMatter(t *testing.T) {
	a := compileYAML(t, "presets: []\nmirrors:\n- {from: gcr.io, to: a.corp}\n- {from: gcr.io/x, to: b.corp}\n- {from: '*', to: 'c.corp/{registry}'}\n")
	b := compileYAML(t, "presets: []\nmirrors:\n- {from: '*', to: 'c.corp/{registry}'}\n- {from: gcr.io/x, to: b.corp}\n- {from: gcr.io, to: a.corp}\n")
	for _, img := range []string{"gcr.io/x/y", "gcr.io/xy", "gcr.io/x", "quay.io/q", "nginx"} {
		if da, db := a.Rewrite(img), b.Rewrite(img); da.Image != db.Image {
			t.Errorf("%s: %q in one order, %q in the other", img, da.Image, db.Image)
		}
	}
}

func TestUserRuleWinsOverPreset(t *testing.T) {
	s := compileYAML(t, "mirrors:\n- from: docker.io\n  to: hub.corp\n")
	if got := s.Rewrite("nginx").Image; got != "hub.corp/library/nginx" {
		t.Fatalf("user rule for docker.io: got %q", got)
	}
	if got := s.Rewrite("quay.io/a/b").Image; got != "quay.m.daocloud.io/a/b" {
		t.Fatalf("the preset's other rules stay: got %q", got)
	}
}

func TestIsLoopback(t *testing.T) {
	for h, want := range map[string]bool{
		"localhost": true, "LocalHost:5000": true, "127.0.0.1": true, "127.1.2.3:5000": true,
		"[::1]:5000": true, "::1": true, "[::1]": true,
		"localhost.corp": false, "10.0.0.1:5000": false, "[fd00::1]:5000": false, "quay.io": false, "": false,
		"registry.localhost": false, "128.0.0.1:5000": false, "[::2]:5000": false,
	} {
		if got := rules.IsLoopback(h); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", h, got, want)
		}
	}
}

func TestNormaliseHost(t *testing.T) {
	for in, want := range map[string]string{
		"Quay.IO:443": "quay.io", "registry-1.docker.io": "docker.io", "index.docker.io": "docker.io",
		"localhost:5000": "localhost:5000", " gcr.io ": "gcr.io",
	} {
		if got := rules.NormaliseHost(in); got != want {
			t.Errorf("NormaliseHost(%q) = %q, want %q", in, got, want)
		}
	}
}
