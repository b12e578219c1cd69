package admission

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeChecker is an in-memory Checker: has lists the images that exist,
// fail the ones whose check errs.
type fakeChecker struct {
	has  map[string]bool
	fail map[string]bool

	mu    sync.Mutex
	calls []string
}

func (f *fakeChecker) Has(ctx context.Context, image string) (bool, error) {
	f.mu.Lock()
	f.calls = append(f.calls, image)
	f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if f.fail[image] {
		return false, errors.New("connection refused")
	}
	return f.has[image], nil
}

// chainConfig has a three-mirror chain for Docker Hub and one mirror for quay.io.
const chainConfig = `
presets: []
check:
  enabled: true
  budget: 2s
mirrors:
  - from: docker.io
    to: [a.mirror.test, b.mirror.test, c.mirror.test]
  - from: quay.io
    to: q.mirror.test
`

func checkedPolicy(t *testing.T, c Checker) *Policy {
	t.Helper()
	p := policyOf(t, parseConfig(t, chainConfig))
	p.Checker = c
	return p
}

func TestCheckChoosesTheFirstMirrorThatHasTheImage(t *testing.T) {
	t.Parallel()
	f := &fakeChecker{
		has: map[string]bool{
			"b.mirror.test/library/nginx:1.25":   true,
			"c.mirror.test/library/nginx:1.25":   true,
			"a.mirror.test/library/busybox:1.36": true,
		},
		fail: map[string]bool{"a.mirror.test/library/nginx:1.25": true},
	}
	object := `{"metadata":{"name":"p","annotations":{}},"spec":{"containers":[` +
		`{"name":"web","image":"nginx:1.25"},{"name":"again","image":"nginx:1.25"},` +
		`{"name":"box","image":"busybox:1.36"},{"name":"quay","image":"quay.io/x/y:1"},{"name":"esc","image":"direct.to/redis"}]}}`
	res, after := reviewPod(t, checkedPolicy(t, f), "CREATE", object, "")

	got := map[string]string{}
	for _, c := range res.Changes {
		got[c.Field] = c.To + " (" + c.Choice + ")"
	}
	want := map[string]string{
		"containers/web":   "b.mirror.test/library/nginx:1.25 (mirror 2 of 3)", // the first errs, the second has it
		"containers/again": "b.mirror.test/library/nginx:1.25 (mirror 2 of 3)",
		"containers/box":   "a.mirror.test/library/busybox:1.36 (mirror 1 of 3)",
		"containers/esc":   "redis ()", // an escape is not checked
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], `containers/quay: no mirror has the image; "quay.io/x/y:1" left as written`) {
		t.Errorf("warnings %q, want one saying quay.io/x/y:1 is left as written", res.Warnings)
	}

	// Every image was checked once, the chain in order up to the first hit.
	calls := map[string]int{}
	for _, c := range f.calls {
		calls[c]++
	}
	wantCalls := map[string]int{
		"a.mirror.test/library/nginx:1.25": 1, "b.mirror.test/library/nginx:1.25": 1,
		"a.mirror.test/library/busybox:1.36": 1, "q.mirror.test/x/y:1": 1,
	}
	if diff := cmp.Diff(wantCalls, calls); diff != "" {
		t.Errorf("checks made (-want +got):\n%s", diff)
	}

	var pod struct {
		Metadata struct{ Annotations map[string]string }
	}
	mustUnmarshal(t, after, &pod)
	var choice map[string]string
	mustUnmarshal(t, []byte(pod.Metadata.Annotations[MirrorChoiceAnnotation]), &choice)
	wantChoice := map[string]string{"containers/web": "mirror 2 of 3", "containers/again": "mirror 2 of 3", "containers/box": "mirror 1 of 3"}
	if diff := cmp.Diff(wantChoice, choice); diff != "" {
		t.Errorf("annotation %s (-want +got):\n%s", MirrorChoiceAnnotation, diff)
	}
	var originals map[string]string
	mustUnmarshal(t, []byte(pod.Metadata.Annotations[OriginalImagesAnnotation]), &originals)
	if _, ok := originals["containers/quay"]; ok {
		t.Errorf("annotation %s records quay, which was left as written: %v", OriginalImagesAnnotation, originals)
	}

	// A reinvocation leaves the chosen second mirror alone.
	res, _ = reviewPod(t, checkedPolicy(t, &fakeChecker{}), "CREATE", string(after), "")
	if len(res.Changes) != 0 {
		t.Errorf("reinvocation changed %+v, want nothing", res.Changes)
	}
}

// cachingChecker is a fakeChecker with a cache in front, as the real one has.
type cachingChecker struct {
	*fakeChecker
	cache map[string]bool // image -> has; absent: not cached
}

func (c *cachingChecker) Cached(image string) (has, ok bool) {
	has, ok = c.cache[image]
	return has, ok
}

// chainCachingChecker also settles whole chains, as internal/registry's
// Checker does; chains counts the calls.
type chainCachingChecker struct {
	*cachingChecker
	chains int
}

func (c *chainCachingChecker) CachedFirst(chain []string) (int, bool) {
	c.chains++
	for i, image := range chain {
		has, ok := c.cache[image]
		if !ok {
			return 0, false
		}
		if has {
			return i, true
		}
	}
	return -1, true
}

func TestCachedAnswersSettleChainsWithoutAsking(t *testing.T) {
	t.Parallel()
	for _, chainAtOnce := range []bool{false, true} {
		t.Run(fmt.Sprintf("chain at once %v", chainAtOnce), func(t *testing.T) {
			t.Parallel()
			f := &cachingChecker{
				fakeChecker: &fakeChecker{has: map[string]bool{"a.mirror.test/library/busybox:1.36": true}},
				cache: map[string]bool{
					"a.mirror.test/library/nginx:1.25": false, // cached: lacks it
					"b.mirror.test/library/nginx:1.25": true,  // cached: has it
					"q.mirror.test/x/y:1":              false, // the whole chain lacks it
				},
			}
			var checker CachedChecker = f
			cc := &chainCachingChecker{cachingChecker: f}
			if chainAtOnce {
				checker = cc
			}
			object := `{"metadata":{"name":"p"},"spec":{"containers":[` +
				`{"name":"web","image":"nginx:1.25"},{"name":"box","image":"busybox:1.36"},{"name":"quay","image":"quay.io/x/y:1"}]}}`
			res, _ := reviewPod(t, checkedPolicy(t, checker), "CREATE", object, "")
			got := map[string]string{}
			for _, c := range res.Changes {
				got[c.Field] = c.To + " (" + c.Choice + ")"
			}
			want := map[string]string{
				"containers/web": "b.mirror.test/library/nginx:1.25 (mirror 2 of 3)",   // from the cache alone
				"containers/box": "a.mirror.test/library/busybox:1.36 (mirror 1 of 3)", // not cached: asked
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
			if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "containers/quay: no mirror has the image") {
				t.Errorf("warnings %q, want one for quay from the cached negative answer", res.Warnings)
			}
			if diff := cmp.Diff([]string{"a.mirror.test/library/busybox:1.36"}, f.calls); diff != "" {
				t.Errorf("Has calls (-want +got): only the uncached chain may be asked\n%s", diff)
			}
			if wantChains := map[bool]int{false: 0, true: 3}[chainAtOnce]; cc.chains != wantChains {
				t.Errorf("CachedFirst called %d times, want %d", cc.chains, wantChains)
			}
		})
	}
}

func TestCheckFailuresKeepTheOriginalImage(t *testing.T) {
	t.Parallel()
	object := `{"metadata":{"name":"p"},"spec":{"containers":[{"name":"web","image":"nginx:1.25"}]}}`
	for _, tc := range []struct {
		name    string
		checker Checker
		warning string
	}{
		{"when every check errs", &fakeChecker{fail: map[string]bool{
			"a.mirror.test/library/nginx:1.25": true, "b.mirror.test/library/nginx:1.25": true, "c.mirror.test/library/nginx:1.25": true,
		}}, "availability check failed: connection refused"},
		{"when no mirror has it", &fakeChecker{}, "no mirror has the image"},
		{"when the checker panics", panicChecker{}, "availability check failed: checker exploded"},
		{"when the budget runs out", blockingChecker{}, "availability check exceeded its 50ms budget"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := checkedPolicy(t, tc.checker)
			p.Check.Budget = 50 * time.Millisecond
			res, _ := reviewPod(t, p, "CREATE", object, "")
			if res.Outcome != Unchanged {
				t.Errorf("outcome %v with %+v, want unchanged", res.Outcome, res.Changes)
			}
			if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], tc.warning) || !strings.Contains(res.Warnings[0], `"nginx:1.25" left as written`) {
				t.Errorf("warnings %q, want one containing %q", res.Warnings, tc.warning)
			}
		})
	}
}

type panicChecker struct{}

func (panicChecker) Has(context.Context, string) (bool, error) { panic("checker exploded") }

// blockingChecker answers only when its context ends.
type blockingChecker struct{}

func (blockingChecker) Has(ctx context.Context, _ string) (bool, error) {
	<-ctx.Done()
	return false, ctx.Err()
}

// rendezvousChecker answers only once n checks are waiting at the same time:
// a webhook that checked images one after another would run out of budget.
type rendezvousChecker struct {
	n       int
	mu      sync.Mutex
	waiting int
	all     chan struct{}
}

func (r *rendezvousChecker) Has(ctx context.Context, image string) (bool, error) {
	r.mu.Lock()
	r.waiting++
	if r.waiting == r.n {
		close(r.all)
	}
	r.mu.Unlock()
	select {
	case <-r.all:
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

func TestCheckRunsTheImagesOfAPodInParallel(t *testing.T) {
	t.Parallel()
	r := &rendezvousChecker{n: 3, all: make(chan struct{})}
	object := `{"metadata":{"name":"p"},"spec":{"initContainers":[{"name":"i","image":"busybox"}],"containers":[{"name":"a","image":"nginx"},{"name":"b","image":"redis"}]}}`
	res, _ := reviewPod(t, checkedPolicy(t, r), "CREATE", object, "")
	if len(res.Changes) != 3 || len(res.Warnings) != 0 {
		t.Errorf("changes %+v warnings %q: want all 3 images rewritten to their first mirror", res.Changes, res.Warnings)
	}
}

func TestCheckingOffMakesNoCalls(t *testing.T) {
	t.Parallel()
	f := &fakeChecker{}
	p := checkedPolicy(t, f)
	p.Check.Enabled = false
	res, _ := reviewPod(t, p, "CREATE", `{"spec":{"containers":[{"name":"a","image":"nginx"}]}}`, "")
	if len(f.calls) != 0 {
		t.Errorf("checks %q with checking off", f.calls)
	}
	if len(res.Changes) != 1 || res.Changes[0].To != "a.mirror.test/library/nginx" || res.Changes[0].Choice != "" {
		t.Errorf("changes %+v, want the chain's first entry, no choice", res.Changes)
	}
	out := decodeResponse(t, res.Response)
	if strings.Contains(string(out.Response.Patch), MirrorChoiceAnnotation) {
		t.Errorf("patch %s records a mirror choice with checking off", out.Response.Patch)
	}
}
