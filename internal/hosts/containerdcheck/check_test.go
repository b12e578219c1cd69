package containerdcheck

import (
	"context"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/containerd/containerd/remotes/docker"
	ctrdconfig "github.com/containerd/containerd/remotes/docker/config"
	cireference "github.com/containers/image/v5/docker/reference"
	"github.com/containers/image/v5/pkg/sysregistriesv2"
	"github.com/containers/image/v5/types"
	"github.com/distribution/reference"

	"github.com/detourhq/detour/internal/config"
	"github.com/detourhq/detour/internal/hosts"
	"github.com/detourhq/detour/internal/rules"
)

// configs are the detour configs under ../testdata checked here.
var configs = []string{"daocloud", "aliyun", "nwcd", "custom", "wildcard"}

// samples are images every config is asked about, besides images made from
// each rule's own from.
var samples = []string{
	"nginx:1.25", "bitnami/redis:7", "docker.io/library/nginx@sha256:" + strings.Repeat("ab", 32),
	"registry.k8s.io/pause:3.9", "registry.k8s.io/coredns/coredns:v1.11.1", "registry.k8s.io/kube-proxy:v1.30.0",
	"k8s.gcr.io/pause:3.2", "k8s.gcr.io/coredns/coredns:v1.8.0",
	"gcr.io/google-containers/pause:3.1", "gcr.io/google_containers/pause:3.1", "gcr.io/distroless/static:nonroot", "gcr.io/other/app:1",
	"quay.io/team/app:2", "quay.io/other/app:2", "ghcr.io/org/tool:1", "localhost:5002/x/y:1", "example.org/team/app:1",
	"docker.elastic.co/elasticsearch/elasticsearch:8.13.0", "mcr.microsoft.com/dotnet/runtime:8.0", "nvcr.io/nvidia/cuda:12",
}

func load(t testing.TB, name string) (*rules.Set, hosts.Options) {
	t.Helper()
	cfg, err := config.LoadFile(filepath.Join("..", "testdata", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	set, err := cfg.Compile()
	if err != nil {
		t.Fatal(err)
	}
	return set, hosts.Options{Source: cfg.Source, Insecure: cfg.InsecureRegistries}
}

// TestContainerdReadsWhatDetourMeans writes each config's hosts.toml
// directory and asks containerd's own loader, for every sample image, which
// hosts it will try: they must be detour's fallback chain for that image, in
// order, then the registry itself, unless Render listed the rule as
// unexpressible.
func TestContainerdReadsWhatDetourMeans(t *testing.T) {
	for _, name := range configs {
		t.Run(name, func(t *testing.T) {
			set, opts := load(t, name)
			checkContainerd(t, set, opts, append(slices.Clone(samples), fromSamples(set)...))
		})
	}
}

// TestContainerdMirrorPathRequests pins the request path containerd builds for
// a mirror with a path: k8s.gcr.io/pause under
// registry.aliyuncs.com/google_containers.
func TestContainerdMirrorPathRequests(t *testing.T) {
	set, opts := load(t, "aliyun")
	res, err := hosts.Render(set, hosts.Containerd, opts)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := hosts.Write(dir, res.Files); err != nil {
		t.Fatal(err)
	}
	hs, err := ctrdconfig.ConfigureHosts(context.Background(), ctrdconfig.HostOptions{HostDir: ctrdconfig.HostDirFromRoot(dir)})("k8s.gcr.io")
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 2 {
		t.Fatalf("containerd found %d hosts for k8s.gcr.io, want the mirror and the server", len(hs))
	}
	got := hs[0].Scheme + "://" + hs[0].Host + path.Join(hs[0].Path, "pause", "manifests", "3.2")
	if want := "https://registry.aliyuncs.com/v2/google_containers/pause/manifests/3.2"; got != want {
		t.Errorf("containerd requests %s, want %s", got, want)
	}
	if hs[0].Capabilities != docker.HostCapabilityPull|docker.HostCapabilityResolve {
		t.Errorf("mirror capabilities %v, want pull and resolve", hs[0].Capabilities)
	}
	if hs[1].Host != "k8s.gcr.io" || hs[1].Path != "/v2" || hs[1].Scheme != "https" {
		t.Errorf("server %+v, want https://k8s.gcr.io/v2", hs[1])
	}
}

// TestCRIOReadsWhatDetourMeans does the same with containers/image's
// registries.conf loader: the pull sources of every sample image must be
// detour's chain, then the image itself.
func TestCRIOReadsWhatDetourMeans(t *testing.T) {
	for _, name := range configs {
		t.Run(name, func(t *testing.T) {
			set, opts := load(t, name)
			checkCRIO(t, set, opts, append(slices.Clone(samples), fromSamples(set)...))
		})
	}
}

// fromSamples makes an image under each rule's from, and one directly at it.
// The from is normalised first: both runtimes look registries up by the host
// exactly as an image names it, so Quay.IO/x or quay.io:443/x would not find
// quay.io's entry (a documented limit of the formats, not of detour).
func fromSamples(set *rules.Set) []string {
	var out []string
	for _, r := range set.Rules() {
		if r.From == rules.Wildcard {
			out = append(out, "example.com/some/app:1")
			continue
		}
		from := strings.TrimSuffix(rules.FromKey(r.From), "/")
		if strings.HasPrefix(from, "registry-1.docker.io") {
			continue // an alias of docker.io that only detour folds
		}
		out = append(out, from+"/sample/img:1", from+"/x:2")
		if strings.Contains(from, "/") {
			out = append(out, from+":3")
		}
	}
	return out
}

// listed reports whether Render listed the rule with from as (partly)
// unexpressible.
func listed(res hosts.Result, from string) bool {
	for _, u := range res.Unexpressible {
		if u.Rule.From == from {
			return true
		}
	}
	return false
}

func checkContainerd(t *testing.T, set *rules.Set, opts hosts.Options, images []string) {
	t.Helper()
	res, err := hosts.Render(set, hosts.Containerd, opts)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := hosts.Write(dir, res.Files); err != nil {
		t.Fatal(err)
	}
	// Every file must parse: on a parse error containerd logs and silently
	// falls back to the registry alone, so count the hosts it found.
	hostsOf := ctrdconfig.ConfigureHosts(context.Background(), ctrdconfig.HostOptions{HostDir: ctrdconfig.HostDirFromRoot(dir)})
	for name, b := range res.Files {
		want := 1 // the server
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "[host.\"") || strings.HasPrefix(line, "  \"") && strings.HasSuffix(line, ".capabilities = [\"pull\", \"resolve\"]") {
				want++
			}
		}
		registry := strings.TrimSuffix(name, "/hosts.toml")
		if registry == "_default" {
			registry = "unlisted.example"
		}
		hs, err := hostsOf(registry)
		if err != nil || len(hs) != want {
			t.Fatalf("containerd read %s as %d hosts (err %v), want %d: the file does not parse\n%s", name, len(hs), err, want, b)
		}
	}
	_, hasDefault := res.Files["_default/hosts.toml"]
	for _, img := range images {
		named, err := reference.ParseNormalizedNamed(img)
		if err != nil {
			continue
		}
		domain, repo := reference.Domain(named), reference.Path(named)
		hs, err := hostsOf(domain)
		if err != nil {
			t.Fatalf("%s: containerd: %v", img, err)
		}
		got := make([]string, len(hs))
		for i, h := range hs {
			got[i] = h.Scheme + "://" + h.Host + path.Join(h.Path, repo)
		}
		d := set.Rewrite(img)
		var want []string
		switch {
		case d.Reason == rules.Rewritten && !listed(res, d.Rule.From):
			for _, m := range d.Chain() {
				want = append(want, requestURL(t, m, opts))
			}
			want = append(want, upstreamURL(domain, repo, opts))
		case d.Reason == rules.NoMatch && !hasDefault:
			// No file for the registry: containerd's default, the registry
			// itself (over http on loopback).
			want = []string{upstreamURL(domain, repo, hosts.Options{})}
		default:
			continue // listed as unexpressible, or already on a mirror
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s (%s): containerd tries\n  %s\nwant\n  %s", img, d.Reason, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	}
}

// requestURL is the URL of the repository of image img on its registry, as a
// registry client asks for it.
func requestURL(t *testing.T, img string, opts hosts.Options) string {
	t.Helper()
	named, err := reference.ParseNormalizedNamed(img)
	if err != nil {
		t.Fatalf("detour's chain holds %q: %v", img, err)
	}
	return upstreamURL(reference.Domain(named), reference.Path(named), opts)
}

func upstreamURL(domain, repo string, opts hosts.Options) string {
	h := strings.TrimSuffix(strings.ToLower(domain), ":443")
	if h == "docker.io" || h == "index.docker.io" {
		h = "registry-1.docker.io"
	}
	scheme := "https"
	if plain(domain, opts) {
		scheme = "http"
	}
	return scheme + "://" + h + "/v2/" + repo
}

// plain is the rule detour documents: loopback hosts and insecureRegistries
// are reached over HTTP.
func plain(h string, opts hosts.Options) bool {
	h = strings.ToLower(h)
	for _, i := range opts.Insecure {
		if strings.ToLower(i) == h {
			return true
		}
	}
	name := h
	if host, _, err := net.SplitHostPort(h); err == nil {
		name = host
	}
	name = strings.Trim(name, "[]")
	ip := net.ParseIP(name)
	return name == "localhost" || ip != nil && ip.IsLoopback()
}

// canonical spells img's registry host the way detour writes it into
// registries.conf: lower-case, no :443, Docker Hub as docker.io.
func canonical(t *testing.T, img string) string {
	t.Helper()
	named, err := reference.ParseNormalizedNamed(img)
	if err != nil {
		t.Fatalf("detour's chain holds %q: %v", img, err)
	}
	h := strings.TrimSuffix(strings.ToLower(reference.Domain(named)), ":443")
	if h == "registry-1.docker.io" || h == "index.docker.io" {
		h = "docker.io"
	}
	return h + strings.TrimPrefix(named.String(), reference.Domain(named))
}

// registriesConf is what detour writes, decoded strictly: any key left over
// would be one CRI-O does not know.
type registriesConf struct {
	UnqualifiedSearchRegistries []string `toml:"unqualified-search-registries"`
	Registry                    []struct {
		Prefix   string `toml:"prefix"`
		Location string `toml:"location"`
		Insecure bool   `toml:"insecure"`
		Mirror   []struct {
			Location string `toml:"location"`
			Insecure bool   `toml:"insecure"`
		} `toml:"mirror"`
	} `toml:"registry"`
}

func checkCRIO(t *testing.T, set *rules.Set, opts hosts.Options, images []string) {
	t.Helper()
	res, err := hosts.Render(set, hosts.CRIO, opts)
	if err != nil {
		t.Fatal(err)
	}
	file, ok := res.Files["registries.conf"]
	if !ok {
		return
	}
	var strict registriesConf
	meta, err := toml.Decode(string(file), &strict)
	if err != nil {
		t.Fatalf("registries.conf is not TOML: %v\n%s", err, file)
	}
	if u := meta.Undecoded(); len(u) > 0 {
		t.Fatalf("registries.conf has keys CRI-O does not know: %v", u)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "registries.conf")
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	sys := &types.SystemContext{SystemRegistriesConfPath: path, SystemRegistriesConfDirPath: filepath.Join(dir, "none.d")}
	sysregistriesv2.InvalidateCache()
	regs, err := sysregistriesv2.GetRegistries(sys)
	if err != nil {
		t.Fatalf("containers/image refuses registries.conf: %v\n%s", err, file)
	}
	if len(regs) != len(strict.Registry) {
		t.Fatalf("containers/image read %d registries, the file has %d", len(regs), len(strict.Registry))
	}
	if search, err := sysregistriesv2.UnqualifiedSearchRegistries(sys); err != nil || !slices.Equal(search, []string{"docker.io"}) {
		t.Errorf("unqualified-search-registries %q (%v), want [docker.io]", search, err)
	}
	for _, img := range images {
		ref, err := cireference.ParseNormalizedNamed(img)
		if err != nil {
			continue
		}
		d := set.Rewrite(img)
		reg, err := sysregistriesv2.FindRegistry(sys, ref.String())
		if err != nil {
			t.Fatalf("%s: FindRegistry: %v", img, err)
		}
		var want []string
		switch {
		case d.Reason == rules.Rewritten && !listed(res, d.Rule.From):
			for _, m := range d.Chain() {
				n, err := cireference.ParseNormalizedNamed(canonical(t, m))
				if err != nil {
					t.Fatalf("detour's chain holds %q: %v", m, err)
				}
				want = append(want, n.String()+insecureMark(plain(cireference.Domain(n), opts)))
			}
		case d.Reason == rules.NoMatch:
			if reg != nil {
				t.Errorf("%s: no detour rule matches, but registries.conf entry %q does", img, reg.Prefix)
			}
			continue
		default:
			continue
		}
		if reg == nil {
			t.Errorf("%s: detour rewrites it, but no registries.conf entry matches", img)
			continue
		}
		sources, err := reg.PullSourcesFromReference(ref)
		if err != nil {
			t.Fatalf("%s: pull sources: %v", img, err)
		}
		want = append(want, ref.String()+insecureMark(plain(cireference.Domain(ref), opts)))
		got := make([]string, len(sources))
		for i, s := range sources {
			got[i] = s.Reference.String() + insecureMark(s.Endpoint.Insecure)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: CRI-O pulls from\n  %s\nwant\n  %s", img, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	}
}

func insecureMark(insecure bool) string {
	if insecure {
		return " (insecure)"
	}
	return ""
}

// FuzzRuntimesReadDetourFiles renders arbitrary rule sets that compile and
// holds both runtimes' own loaders to detour's meaning, as the tests above do
// for the fixed configs.
func FuzzRuntimesReadDetourFiles(f *testing.F) {
	f.Add("docker.io", "docker.m.daocloud.io,127.0.0.1:5000/x", "k8s.gcr.io", "registry.aliyuncs.com/google_containers", "*", "m.daocloud.io/{registry}", "mirror.corp:5000")
	f.Add("gcr.io/google-containers", "127.0.0.1:5000/gcr", "gcr.io", "mirror.corp:5000/gcr", "*", "mirror.corp/all", "")
	f.Add("localhost:5002", "m.example/{registry},LOCALHOST:5004", "Quay.IO:443", "LOCALHOST:5004", "docker.io/library", "googlecontainersmirror", "localhost:5004")
	f.Add("[::1]:5000", "[::1]:5001/x", "index.docker.io", "registry-1.docker.io/mirror", "*", "a.b/{registry}/c,a.b", "a.b")
	f.Fuzz(func(t *testing.T, from1, to1, from2, to2, from3, to3, insecure string) {
		var list []rules.Rule
		for _, r := range [][2]string{{from1, to1}, {from2, to2}, {from3, to3}} {
			list = append(list, rules.Rule{From: r[0], To: strings.Split(r[1], ",")})
		}
		set, err := rules.Compile(list, "")
		if err != nil {
			return
		}
		opts := hosts.Options{Source: "fuzz"}
		if rules.IsRegistryHost(insecure) {
			opts.Insecure = []string{insecure}
		}
		images := append(fromSamples(set), "nginx:1", "example.org/a/b:1")
		checkContainerd(t, set, opts, images)
		checkCRIO(t, set, opts, images)
	})
}
