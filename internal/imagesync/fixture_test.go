package imagesync_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/detourhq/detour/internal/imagesync"
	"github.com/detourhq/detour/internal/rules"
)

// memRegistry is go-containerregistry's in-process registry behind a
// request recorder.
type memRegistry struct {
	Host  string
	rec   *recorder
	close func()
}

type recorder struct {
	next http.Handler
	mu   sync.Mutex
	reqs []string // "METHOD /path"
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req.Method+" "+req.URL.Path)
	r.mu.Unlock()
	r.next.ServeHTTP(w, req)
}

// requests returns the requests so far and forgets them.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reqs
	r.reqs = nil
	return out
}

func newMemRegistry(t *testing.T) *memRegistry {
	t.Helper()
	rec := &recorder{next: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return &memRegistry{Host: strings.TrimPrefix(srv.URL, "http://"), rec: rec, close: srv.Close}
}

// count counts requests with the method whose path contains part.
func count(reqs []string, method, part string) int {
	n := 0
	for _, r := range reqs {
		m, p, _ := strings.Cut(r, " ")
		if m == method && strings.Contains(p, part) {
			n++
		}
	}
	return n
}

// writes lists the requests that change something.
func writes(reqs []string) []string {
	var out []string
	for _, r := range reqs {
		if m, _, _ := strings.Cut(r, " "); m != http.MethodGet && m != http.MethodHead {
			out = append(out, r)
		}
	}
	return out
}

// must panics on err: for test fixtures, whose construction never fails
// unless the test itself is wrong.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// layer is a random layer of n bytes of the given media type.
func layer(t testing.TB, n int64, mt types.MediaType) v1.Layer {
	t.Helper()
	return must(random.Layer(n, mt))
}

// image builds an image from layers with a config that names it, so two
// images with the same layers still differ. oci picks OCI media types,
// else Docker schema 2.
func image(t testing.TB, oci bool, label string, p v1.Platform, layers ...v1.Layer) v1.Image {
	t.Helper()
	img := must(mutate.AppendLayers(empty.Image, layers...))
	cf := must(img.ConfigFile())
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Config.Labels = map[string]string{"test": label}
	img = must(mutate.ConfigFile(img, cf))
	if oci {
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	} else {
		img = mutate.MediaType(img, types.DockerManifestSchema2)
		img = mutate.ConfigMediaType(img, types.DockerConfigJSON)
	}
	return img
}

var (
	amd64   = v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64   = v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	ppc64le = v1.Platform{OS: "linux", Architecture: "ppc64le"}
)

// index builds a multi-platform index over base, one image per platform.
// oci makes an OCI index, else a Docker manifest list. artifact adds an
// entry with an artifactType (and no platform).
func index(t testing.TB, oci bool, label string, base []v1.Layer, platforms []v1.Platform, artifact bool) v1.ImageIndex {
	t.Helper()
	lt := types.DockerLayer
	idx := mutate.IndexMediaType(empty.Index, types.DockerManifestList)
	if oci {
		lt = types.OCILayer
		idx = mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	}
	for _, p := range platforms {
		layers := append(append([]v1.Layer(nil), base...), layer(t, 2048, lt))
		img := image(t, oci, label+"-"+p.String(), p, layers...)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	if artifact {
		sbom := image(t, true, label+"-sbom", v1.Platform{}, layer(t, 512, types.OCILayer))
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: sbom, Descriptor: v1.Descriptor{
			ArtifactType: "application/vnd.example.sbom.v1+json",
			Annotations:  map[string]string{"vnd.example.kind": "sbom"},
		}})
	}
	return idx
}

// push writes an image or index under ref.
func push(t testing.TB, ref string, x any, opts ...remote.Option) {
	t.Helper()
	r := must(name.ParseReference(ref))
	var err error
	switch v := x.(type) {
	case v1.Image:
		err = remote.Write(r, v, opts...)
	case v1.ImageIndex:
		err = remote.WriteIndex(r, v, opts...)
	default:
		t.Fatalf("push %T", x)
	}
	if err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
}

// manifestOf fetches a manifest's raw bytes and digest.
func manifestOf(t testing.TB, ref string, opts ...remote.Option) ([]byte, string) {
	t.Helper()
	d, err := remote.Get(must(name.ParseReference(ref)), opts...)
	if err != nil {
		t.Fatalf("getting %s: %v", ref, err)
	}
	return d.Manifest, d.Digest.String()
}

// intact pulls everything ref refers to and checks every digest.
func intact(t testing.TB, ref string, opts ...remote.Option) {
	t.Helper()
	r := must(name.ParseReference(ref))
	d, err := remote.Get(r, opts...)
	if err != nil {
		t.Fatalf("getting %s: %v", ref, err)
	}
	if d.MediaType.IsIndex() {
		err = validate.Index(must(d.ImageIndex()))
	} else {
		err = validate.Image(must(d.Image()))
	}
	if err != nil {
		t.Errorf("%s is not intact: %v", ref, err)
	}
}

// sameManifest asserts that target holds source's manifest, byte for byte.
func sameManifest(t testing.TB, source, target string, srcOpts, dstOpts []remote.Option) {
	t.Helper()
	sb, sd := manifestOf(t, source, srcOpts...)
	tb, td := manifestOf(t, target, dstOpts...)
	if sd != td || string(sb) != string(tb) {
		t.Errorf("%s has %s, its copy %s has %s", source, sd, target, td)
	}
}

// mirrorSet sends every image of src to dst/mirror/...
func mirrorSet(t testing.TB, src, dst string) *rules.Set {
	t.Helper()
	return must(rules.Compile([]rules.Rule{{From: src, To: []string{dst + "/mirror"}, Origin: "test"}}, ""))
}

// byStatus indexes results by source.
func byStatus(results []imagesync.Result) map[string]imagesync.Result {
	m := map[string]imagesync.Result{}
	for _, r := range results {
		m[r.Source] = r
	}
	return m
}

func entries(images ...string) []imagesync.Entry {
	out := make([]imagesync.Entry, len(images))
	for i, s := range images {
		out[i] = imagesync.Entry{Line: i + 1, Image: s}
	}
	return out
}

func failures(results []imagesync.Result) string {
	var b strings.Builder
	for _, r := range results {
		if r.Status == imagesync.Failed {
			fmt.Fprintf(&b, "\n  %s: %v", r.Source, r.Err)
		}
	}
	return b.String()
}

func remoteImage(ref string, opts ...remote.Option) (v1.Image, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	return remote.Image(r, opts...)
}
