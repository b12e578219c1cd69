package imagesync_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/detourhq/detour/internal/imagesync"
	"github.com/detourhq/detour/internal/regtest"
)

// dataset pushes a small but complete set of images to a registry and
// returns their references (without the host) and the number of distinct
// blobs: an OCI index (3 platforms and an artifactType entry), a Docker
// manifest list (2 platforms), single Docker and OCI images, all sharing
// base layers across repositories.
func dataset(t *testing.T, host string, opts ...remote.Option) ([]string, int) {
	t.Helper()
	baseD := []v1.Layer{layer(t, 64<<10, types.DockerLayer), layer(t, 16<<10, types.DockerLayer)}
	baseO := []v1.Layer{layer(t, 48<<10, types.OCILayer)}
	imgs := map[string]any{
		"lib/oci-index:1":   index(t, true, "oci", baseO, []v1.Platform{amd64, arm64, ppc64le}, true),
		"lib/docker-list:1": index(t, false, "list", baseD, []v1.Platform{amd64, arm64}, false),
		"app/single:1":      image(t, false, "single", amd64, append(baseD[:2:2], layer(t, 32<<10, types.DockerLayer))...),
		"app/single:2":      image(t, false, "single2", amd64, append(baseD[:2:2], layer(t, 8<<10, types.DockerLayer))...),
		"other/oci:1":       image(t, true, "oci-single", arm64, append(baseO[:1:1], layer(t, 24<<10, types.OCILayer))...),
	}
	blobs := map[string]bool{}
	var refs []string
	for ref, x := range imgs {
		push(t, host+"/"+ref, x, opts...)
		refs = append(refs, ref)
		var images []v1.Image
		switch v := x.(type) {
		case v1.Image:
			images = append(images, v)
		case v1.ImageIndex:
			for _, d := range must(v.IndexManifest()).Manifests {
				images = append(images, must(v.Image(d.Digest)))
			}
		}
		for _, img := range images {
			blobs[must(img.ConfigName()).String()] = true
			for _, l := range must(img.Layers()) {
				blobs[must(l.Digest()).String()] = true
			}
		}
	}
	return refs, len(blobs)
}

// accessLog matches the registry's access log lines: method and URI.
var accessLog = regexp.MustCompile(`(?m)^127\.0\.0\.1 - \S+ \[[^\]]+\] "([A-Z]+) (\S+) HTTP`)

type logged struct{ method, uri string }

func requestsIn(log string) []logged {
	var out []logged
	for _, m := range accessLog.FindAllStringSubmatch(log, -1) {
		out = append(out, logged{m[1], m[2]})
	}
	return out
}

func countLogged(reqs []logged, method string, parts ...string) int {
	n := 0
outer:
	for _, r := range reqs {
		if r.method != method {
			continue
		}
		for _, p := range parts {
			if !strings.Contains(r.uri, p) {
				continue outer
			}
		}
		n++
	}
	return n
}

// TestIntegrationCopyIntoTLSRegistryWithAuth copies from a plain
// docker-registry into one with TLS and htpasswd, the credentials coming
// from a DOCKER_CONFIG directory, then resyncs.
func TestIntegrationCopyIntoTLSRegistryWithAuth(t *testing.T) {
	src := regtest.Start(t, regtest.Options{})
	dst := regtest.Start(t, regtest.Options{TLS: true, User: "mirror", Password: "s3cret"})
	t.Setenv("DOCKER_CONFIG", regtest.DockerConfig(t, dst))
	refs, nblobs := dataset(t, src.Host)
	dstOpts := []remote.Option{remote.WithTransport(dst.Transport()), remote.WithAuth(&authn.Basic{Username: "mirror", Password: "s3cret"})}

	set := mirrorSet(t, src.Host, dst.Host)
	var list []string
	for _, r := range refs {
		list = append(list, src.Host+"/"+r)
	}
	srcBefore, dstBefore := len(src.Log()), len(dst.Log())
	opts := imagesync.Options{Transport: dst.Transport(), Retry: fastRetry}
	results := imagesync.New(opts).Run(context.Background(), imagesync.Plan(set, entries(list...)))
	if f := failures(results); f != "" {
		t.Fatalf("cold copy failed:%s", f)
	}
	uploaded, mounted := 0, 0
	for _, r := range results {
		if r.Status != imagesync.Copied || r.SourceDigest != r.TargetDigest {
			t.Errorf("%s: %s, source %s, target %s", r.Source, r.Status, r.SourceDigest, r.TargetDigest)
		}
		uploaded += r.Blobs.Uploaded
		mounted += r.Blobs.Mounted
	}
	for _, r := range refs {
		sameManifest(t, src.Host+"/"+r, dst.Host+"/mirror/"+r, nil, dstOpts)
		intact(t, dst.Host+"/mirror/"+r, dstOpts...)
	}
	body, _ := manifestOf(t, dst.Host+"/mirror/lib/oci-index:1", dstOpts...)
	if !strings.Contains(string(body), `"artifactType":"application/vnd.example.sbom.v1+json"`) {
		t.Errorf("the copied OCI index lost its artifactType:\n%s", body)
	}
	// The registry's own log: each distinct blob uploaded exactly once,
	// shared ones mounted into the other repositories, each read once.
	dstReqs := requestsIn(dst.Log()[dstBefore:])
	srcReqs := requestsIn(src.Log()[srcBefore:])
	puts := countLogged(dstReqs, "PUT", "/blobs/uploads/")
	mounts := countLogged(dstReqs, "POST", "/blobs/uploads/", "mount=")
	gets := countLogged(srcReqs, "GET", "/blobs/sha256:")
	if puts != nblobs || uploaded != nblobs || gets != nblobs {
		t.Errorf("%d distinct blobs: %d uploads logged, %d reported, %d source reads", nblobs, puts, uploaded, gets)
	}
	if mounts == 0 || mounted != mounts {
		t.Errorf("%d mounts logged, %d reported; the shared base layers should be mounted", mounts, mounted)
	}
	if n := countLogged(dstReqs, "PATCH"); n != 0 {
		t.Errorf("%d PATCH requests: uploads should be one streamed PUT each", n)
	}

	// A resync only looks: no write of any kind, no blob read.
	srcBefore, dstBefore = len(src.Log()), len(dst.Log())
	again := imagesync.New(opts).Run(context.Background(), imagesync.Plan(set, entries(list...)))
	for _, r := range again {
		if r.Status != imagesync.Present {
			t.Errorf("resync %s: %s %v", r.Source, r.Status, r.Err)
		}
	}
	dstReqs = requestsIn(dst.Log()[dstBefore:])
	srcReqs = requestsIn(src.Log()[srcBefore:])
	for _, r := range dstReqs {
		if r.method != "GET" && r.method != "HEAD" {
			t.Errorf("resync wrote: %s %s", r.method, r.uri)
		}
	}
	if n := countLogged(srcReqs, "GET", "/blobs/"); n != 0 {
		t.Errorf("resync read %d blobs from the source", n)
	}
	if n := countLogged(dstReqs, "HEAD", "/manifests/"); n != len(list) {
		t.Errorf("resync sent %d manifest HEADs to the target, want one per image (%d)", n, len(list))
	}
}

// TestIntegrationThroughFaultySource copies through a proxy that injects
// every kind of fault in front of the source; every image arrives intact.
func TestIntegrationThroughFaultySource(t *testing.T) {
	t.Parallel()
	src := regtest.Start(t, regtest.Options{})
	dst := regtest.Start(t, regtest.Options{})
	refs, _ := dataset(t, src.Host)
	fp := regtest.NewFaultProxy(t, src.URL, regtest.Faults{Seed: 42, Rate: 0.3, MaxFaults: 24, RetryAfter: time.Second})
	set := mirrorSet(t, fp.Host, dst.Host)
	var list []string
	for _, r := range refs {
		list = append(list, fp.Host+"/"+r)
	}
	results := imagesync.New(imagesync.Options{Retry: fastRetry}).Run(context.Background(), imagesync.Plan(set, entries(list...)))
	inj := fp.Injected()
	if f := failures(results); f != "" {
		t.Fatalf("failed with faults %v:%s", inj, f)
	}
	for _, r := range refs {
		sameManifest(t, src.Host+"/"+r, dst.Host+"/mirror/"+r, nil, nil)
		intact(t, dst.Host+"/mirror/"+r)
	}
	total := 0
	for _, n := range inj {
		total += n
	}
	if total < 10 || len(inj) < 3 {
		t.Errorf("only %d faults of %d kinds injected (%v): the test proves little", total, len(inj), inj)
	}
	t.Logf("faults injected: %v", inj)
}

// TestIntegrationCutBlobRestartsUpload cuts the first blob downloads off
// halfway, while their bytes are already streaming into the target: the
// uploads are restarted and the blobs arrive whole.
func TestIntegrationCutBlobRestartsUpload(t *testing.T) {
	t.Parallel()
	src := regtest.Start(t, regtest.Options{})
	dst := regtest.Start(t, regtest.Options{})
	push(t, src.Host+"/big:1", image(t, false, "big", amd64, layer(t, 4<<20, types.DockerLayer), layer(t, 2<<20, types.DockerLayer)))
	fp := regtest.NewFaultProxy(t, src.URL, regtest.Faults{Rate: 1, MaxFaults: 3, Kinds: []regtest.Fault{regtest.Truncate},
		Match: func(r *http.Request) bool {
			return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/")
		}})
	results := imagesync.New(imagesync.Options{Retry: fastRetry}).Run(context.Background(),
		imagesync.Plan(mirrorSet(t, fp.Host, dst.Host), entries(fp.Host+"/big:1")))
	if f := failures(results); f != "" {
		t.Fatal(f)
	}
	if n := fp.Injected()[regtest.Truncate]; n != 3 {
		t.Fatalf("%d blob downloads cut, want 3", n)
	}
	sameManifest(t, src.Host+"/big:1", dst.Host+"/mirror/big:1", nil, nil)
	intact(t, dst.Host+"/mirror/big:1")
	// 3 blobs (2 layers, 1 config) and 3 cuts: 6 upload sessions, 3 completed.
	reqs := requestsIn(dst.Log())
	if posts := countLogged(reqs, "POST", "/blobs/uploads/"); posts != 6 {
		t.Errorf("%d upload sessions opened, want 6", posts)
	}
	if r := results[0]; r.Blobs.Uploaded != 3 {
		t.Errorf("%d blobs uploaded, want 3", r.Blobs.Uploaded)
	}
}
