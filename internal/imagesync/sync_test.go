package imagesync_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"go.uber.org/goleak"

	"github.com/detourhq/detour/internal/imagesync"
	"github.com/detourhq/detour/internal/regtest"
)

// fastRetry keeps failing tests short; Retry-After is still honoured.
var fastRetry = imagesync.Retry{Attempts: 16, Initial: time.Millisecond, Max: 20 * time.Millisecond, MaxRetryAfter: 5 * time.Second, Budget: time.Minute}

func TestCopiesImagesAndIndexesWithDigestsUnchanged(t *testing.T) {
	t.Parallel()
	src, dst := newMemRegistry(t), newMemRegistry(t)
	base := []v1.Layer{layer(t, 4096, types.OCILayer)}
	push(t, src.Host+"/app/oci:1", index(t, true, "oci", base, []v1.Platform{amd64, arm64, ppc64le}, true))
	push(t, src.Host+"/app/docker:1", index(t, false, "docker", nil, []v1.Platform{amd64, arm64}, false))
	push(t, src.Host+"/app/single:1", image(t, false, "single", amd64, layer(t, 1000, types.DockerLayer), layer(t, 3000, types.DockerLayer)))
	_, singleDigest := manifestOf(t, src.Host+"/app/single:1")
	push(t, src.Host+"/app/pinned:2", image(t, true, "pinned", amd64, base...))
	_, pinnedDigest := manifestOf(t, src.Host+"/app/pinned:2")

	set := mirrorSet(t, src.Host, dst.Host)
	list := entries(src.Host+"/app/oci:1", src.Host+"/app/docker:1", src.Host+"/app/single@"+singleDigest,
		src.Host+"/app/pinned:2@"+pinnedDigest)
	var mu sync.Mutex
	var events []imagesync.EventKind
	s := imagesync.New(imagesync.Options{Retry: fastRetry, Events: func(e imagesync.Event) {
		mu.Lock()
		events = append(events, e.Kind)
		mu.Unlock()
	}})
	results := s.Run(context.Background(), imagesync.Plan(set, list))
	for _, r := range results {
		if r.Status != imagesync.Copied {
			t.Fatalf("%s: %s %v%s", r.Source, r.Status, r.Err, failures(results))
		}
		if r.SourceDigest != r.TargetDigest || r.Narrowed {
			t.Errorf("%s: source %s, target %s, narrowed %v", r.Source, r.SourceDigest, r.TargetDigest, r.Narrowed)
		}
	}
	m := byStatus(results)
	if got := m[list[0].Image]; got.Manifests != 5 || got.MediaType != string(types.OCIImageIndex) {
		t.Errorf("OCI index: %d manifests pushed (want 4 children + index), media type %s", got.Manifests, got.MediaType)
	}
	for _, c := range []struct{ source, target string }{
		{src.Host + "/app/oci:1", dst.Host + "/mirror/app/oci:1"},
		{src.Host + "/app/docker:1", dst.Host + "/mirror/app/docker:1"},
		{src.Host + "/app/single@" + singleDigest, dst.Host + "/mirror/app/single@" + singleDigest},
		{src.Host + "/app/pinned:2", dst.Host + "/mirror/app/pinned:2"},
	} {
		sameManifest(t, c.source, c.target, nil, nil)
		intact(t, c.target)
	}
	body, _ := manifestOf(t, dst.Host+"/mirror/app/oci:1")
	if !strings.Contains(string(body), `"artifactType":"application/vnd.example.sbom.v1+json"`) {
		t.Errorf("the copied index lost its artifactType entry:\n%s", body)
	}
	// Every job starts and ends exactly once.
	var started, copying, done int
	for _, k := range events {
		switch k {
		case imagesync.Started:
			started++
		case imagesync.Copying:
			copying++
		case imagesync.Done:
			done++
		}
	}
	if started != len(list) || copying != len(list) || done != len(list) {
		t.Errorf("events: %d Started, %d Copying, %d Done for %d jobs", started, copying, done, len(list))
	}
}

func TestResyncOnlyLooks(t *testing.T) {
	t.Parallel()
	src, dst := newMemRegistry(t), newMemRegistry(t)
	push(t, src.Host+"/a:1", index(t, true, "a", nil, []v1.Platform{amd64, arm64}, false))
	push(t, src.Host+"/b:1", image(t, false, "b", amd64, layer(t, 100, types.DockerLayer)))
	list := entries(src.Host+"/a:1", src.Host+"/b:1")
	set := mirrorSet(t, src.Host, dst.Host)
	first := imagesync.New(imagesync.Options{Retry: fastRetry}).Run(context.Background(), imagesync.Plan(set, list))
	if f := failures(first); f != "" {
		t.Fatal(f)
	}
	src.rec.take()
	dst.rec.take()

	var copying atomic.Int32
	again := imagesync.New(imagesync.Options{Retry: fastRetry, Events: func(e imagesync.Event) {
		if e.Kind == imagesync.Copying {
			copying.Add(1)
		}
	}}).Run(context.Background(), imagesync.Plan(set, list))
	if copying.Load() != 0 {
		t.Errorf("%d Copying events on a resync", copying.Load())
	}
	for _, r := range again {
		if r.Status != imagesync.Present || r.Bytes != 0 || r.Manifests != 0 {
			t.Errorf("%s: %s, %d bytes, %d manifests; want present and nothing moved", r.Source, r.Status, r.Bytes, r.Manifests)
		}
	}
	srcReqs, dstReqs := src.rec.take(), dst.rec.take()
	if w := writes(dstReqs); len(w) != 0 {
		t.Errorf("a resync wrote to the target: %v", w)
	}
	// One HEAD per image on each side (the ping aside), no blob traffic.
	for side, reqs := range map[string][]string{"source": srcReqs, "target": dstReqs} {
		if n := count(reqs, http.MethodHead, "/manifests/"); n != len(list) {
			t.Errorf("%s: %d manifest HEADs, want %d: %v", side, n, len(list), reqs)
		}
		if n := count(reqs, http.MethodGet, "/blobs/") + count(reqs, http.MethodHead, "/blobs/"); n != 0 {
			t.Errorf("%s: %d blob requests: %v", side, n, reqs)
		}
	}
}

func TestSharedBlobsMoveOncePerRepository(t *testing.T) {
	t.Parallel()
	src, dst := newMemRegistry(t), newMemRegistry(t)
	base := []v1.Layer{layer(t, 8192, types.DockerLayer), layer(t, 4096, types.DockerLayer)}
	var list []string
	// Six tags of one repository over the same base, in parallel.
	for i := range 6 {
		ref := src.Host + "/same:" + string(rune('a'+i))
		push(t, ref, image(t, false, ref, amd64, append(base[:2:2], layer(t, 100, types.DockerLayer))...))
		list = append(list, ref)
	}
	set := mirrorSet(t, src.Host, dst.Host)
	src.rec.take()
	results := imagesync.New(imagesync.Options{Retry: fastRetry, Parallel: 6}).Run(context.Background(), imagesync.Plan(set, entries(list...)))
	if f := failures(results); f != "" {
		t.Fatal(f)
	}
	var uploaded, present int
	for _, r := range results {
		uploaded += r.Blobs.Uploaded
		present += r.Blobs.Present
	}
	// 2 shared layers + 6 own layers + 6 configs.
	if uploaded != 14 || present != 10 {
		t.Errorf("blobs uploaded %d (want 14), present %d (want 10)", uploaded, present)
	}
	reqs := src.rec.take()
	for _, l := range base {
		dg := must(l.Digest()).String()
		if n := count(reqs, http.MethodGet, "/blobs/"+dg); n != 1 {
			t.Errorf("shared layer %s read %d times from the source, want once", dg[:19], n)
		}
	}
}

func TestPlatformNarrowsAndSaysTheDigestChanged(t *testing.T) {
	t.Parallel()
	src, dst := newMemRegistry(t), newMemRegistry(t)
	idx := index(t, true, "n", nil, []v1.Platform{amd64, arm64, ppc64le}, false)
	push(t, src.Host+"/multi:1", idx)
	push(t, src.Host+"/one:1", image(t, false, "one", amd64, layer(t, 10, types.DockerLayer)))
	im := must(idx.IndexManifest())
	var armDigest string
	for _, d := range im.Manifests {
		if d.Platform.Architecture == "arm64" {
			armDigest = d.Digest.String()
		}
	}
	set := mirrorSet(t, src.Host, dst.Host)
	p := must(v1.ParsePlatform("linux/arm64"))
	results := imagesync.New(imagesync.Options{Retry: fastRetry, Platform: p}).
		Run(context.Background(), imagesync.Plan(set, entries(src.Host+"/multi:1", src.Host+"/one:1", src.Host+"/one:1")))
	multi := results[0]
	if multi.Status != imagesync.Copied || !multi.Narrowed || multi.TargetDigest != armDigest ||
		multi.SourceDigest == multi.TargetDigest || !strings.Contains(multi.Note, "differs") {
		t.Fatalf("narrowed copy: %+v", multi)
	}
	_, got := manifestOf(t, dst.Host+"/mirror/multi:1")
	if got != armDigest {
		t.Errorf("target tag has %s, want the arm64 child %s", got, armDigest)
	}
	intact(t, dst.Host+"/mirror/multi:1")
	if one := results[1]; one.Status != imagesync.Copied || one.Narrowed || one.SourceDigest != one.TargetDigest {
		t.Errorf("single image under --platform: %+v", one)
	}
	if dup := results[2]; dup.Status != imagesync.Skipped || !strings.Contains(dup.Note, "line 2") {
		t.Errorf("a source listed twice: %+v", dup)
	}

	// Asking for a platform the index lacks fails and lists what it has.
	p = must(v1.ParsePlatform("windows/amd64"))
	results = imagesync.New(imagesync.Options{Retry: fastRetry, Platform: p}).
		Run(context.Background(), imagesync.Plan(set, entries(src.Host+"/multi:1")))
	if r := results[0]; r.Status != imagesync.Failed || !strings.Contains(r.Err.Error(), "linux/arm64/v8") {
		t.Errorf("missing platform: %s %v", r.Status, r.Err)
	}
}

func TestDryRunNeverWrites(t *testing.T) {
	t.Parallel()
	src, dst := newMemRegistry(t), newMemRegistry(t)
	push(t, src.Host+"/x:1", image(t, false, "x1", amd64, layer(t, 10, types.DockerLayer)))
	push(t, src.Host+"/x:2", image(t, false, "x2", amd64, layer(t, 10, types.DockerLayer)))
	push(t, src.Host+"/y:1", image(t, false, "y", amd64, layer(t, 10, types.DockerLayer)))
	// The target already has x:1, and an older y:1.
	push(t, dst.Host+"/mirror/x:1", must(remoteImage(src.Host+"/x:1")))
	push(t, dst.Host+"/mirror/y:1", image(t, false, "old y", amd64, layer(t, 10, types.DockerLayer)))
	dst.rec.take()
	set := mirrorSet(t, src.Host, dst.Host)
	results := imagesync.New(imagesync.Options{Retry: fastRetry, DryRun: true}).Run(context.Background(),
		imagesync.Plan(set, entries(src.Host+"/x:1", src.Host+"/x:2", src.Host+"/y:1", "elsewhere.example/z:1")))
	want := []struct {
		status imagesync.Status
		note   string
	}{
		{imagesync.Present, ""},
		{imagesync.Planned, "missing at the target"},
		{imagesync.Planned, "the target has sha256:"},
		{imagesync.Skipped, "no rule matches"},
	}
	for i, w := range want {
		if r := results[i]; r.Status != w.status || !strings.Contains(r.Note, w.note) {
			t.Errorf("%s: %s %q %v; want %s %q", r.Source, r.Status, r.Note, r.Err, w.status, w.note)
		}
	}
	if w := writes(dst.rec.take()); len(w) != 0 {
		t.Errorf("dry run wrote: %v", w)
	}
}

func TestFailuresAreNamedAndOthersStillCopy(t *testing.T) {
	t.Parallel()
	src, dst := newMemRegistry(t), newMemRegistry(t)
	push(t, src.Host+"/ok:1", image(t, false, "ok", amd64, layer(t, 10, types.DockerLayer)))
	set := mirrorSet(t, src.Host, dst.Host)
	results := imagesync.New(imagesync.Options{Retry: fastRetry}).Run(context.Background(),
		imagesync.Plan(set, entries(src.Host+"/missing:1", src.Host+"/ok:1")))
	if r := results[0]; r.Status != imagesync.Failed || !strings.Contains(r.Err.Error(), src.Host+"/missing:1") {
		t.Errorf("missing source: %s %v", r.Status, r.Err)
	}
	if r := results[1]; r.Status != imagesync.Copied {
		t.Errorf("ok: %s %v", r.Status, r.Err)
	}
}

func TestRetriesThroughFaultsInMemory(t *testing.T) {
	t.Parallel()
	src, dst := newMemRegistry(t), newMemRegistry(t)
	var list []string
	for i := range 3 {
		ref := src.Host + "/f" + string(rune('a'+i)) + ":1"
		push(t, ref, index(t, i%2 == 0, ref, nil, []v1.Platform{amd64, arm64}, false))
		list = append(list, ref)
	}
	fp := regtest.NewFaultProxy(t, "http://"+src.Host, regtest.Faults{Seed: 7, Rate: 0.4, MaxFaults: 12, RetryAfter: time.Second,
		// Pings are retried before any job exists to report it.
		Match: func(r *http.Request) bool { return r.URL.Path != "/v2/" }})
	// The rules map the proxy's host; the copy reads through it.
	set := mirrorSet(t, fp.Host, dst.Host)
	var proxied []string
	for _, ref := range list {
		proxied = append(proxied, strings.Replace(ref, src.Host, fp.Host, 1))
	}
	var mu sync.Mutex
	var waits []time.Duration
	results := imagesync.New(imagesync.Options{Retry: fastRetry, Events: func(e imagesync.Event) {
		if e.Kind == imagesync.Retrying {
			mu.Lock()
			waits = append(waits, e.Wait)
			mu.Unlock()
		}
	}}).Run(context.Background(), imagesync.Plan(set, entries(proxied...)))
	if f := failures(results); f != "" {
		t.Fatalf("failed through faults %v:%s", fp.Injected(), f)
	}
	for _, ref := range list {
		target := strings.Replace(ref, src.Host, dst.Host+"/mirror", 1)
		sameManifest(t, ref, target, nil, nil)
		intact(t, target)
	}
	inj := fp.Injected()
	total := 0
	for _, n := range inj {
		total += n
	}
	// net/http itself resends a GET or HEAD whose reused connection was
	// reset before any answer, so resets may go unseen; nothing else does.
	if total == 0 || len(waits) < total-inj[regtest.Reset] {
		t.Errorf("%d faults injected (%v), %d retries", total, inj, len(waits))
	}
	if inj[regtest.TooManyRequests] > 0 {
		long := 0
		for _, w := range waits {
			if w >= time.Second {
				long++
			}
		}
		if long < inj[regtest.TooManyRequests] {
			t.Errorf("%d 429s with Retry-After: 1 but only %d waits of 1 s or more: %v", inj[regtest.TooManyRequests], long, waits)
		}
	}
}

func TestCancelledRunFailsEveryImage(t *testing.T) {
	t.Parallel()
	src, dst := newMemRegistry(t), newMemRegistry(t)
	push(t, src.Host+"/c:1", image(t, false, "c", amd64, layer(t, 10, types.DockerLayer)))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	results := imagesync.New(imagesync.Options{Retry: fastRetry}).Run(ctx, imagesync.Plan(mirrorSet(t, src.Host, dst.Host), entries(src.Host+"/c:1")))
	if r := results[0]; r.Status != imagesync.Failed || !errors.Is(r.Err, context.Canceled) {
		t.Errorf("cancelled: %s %v", r.Status, r.Err)
	}
}

func TestRunLeavesNoGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	src, dst := newMemRegistry(t), newMemRegistry(t)
	push(t, src.Host+"/g:1", index(t, true, "g", nil, []v1.Platform{amd64, arm64}, false))
	s := imagesync.New(imagesync.Options{Retry: fastRetry})
	results := s.Run(context.Background(), imagesync.Plan(mirrorSet(t, src.Host, dst.Host), entries(src.Host+"/g:1")))
	s.Close()
	if f := failures(results); f != "" {
		t.Fatal(f)
	}
	src.close()
	dst.close()
}
