package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCheckerCachesPositiveForTTLAndNegativeForATenth(t *testing.T) {
	t.Parallel()
	reg := newMemRegistry(t)
	push(t, reg.Host, "app:1")
	clock := newFakeClock()
	c := newTestChecker(t, newTestClient(t, ClientOptions{}), CheckerOptions{TTL: 10 * time.Minute, Now: clock.Now})
	ctx := context.Background()
	present, absent := reg.Host+"/app:1", reg.Host+"/app:2"
	has := func(img string, want bool, wantHeads int64) {
		t.Helper()
		got, err := c.Has(ctx, img)
		if err != nil || got != want {
			t.Fatalf("Has(%s) = %v, %v; want %v", img, got, err, want)
		}
		if h := reg.heads.Load(); h != wantHeads {
			t.Fatalf("after Has(%s): %d HEADs, want %d", img, h, wantHeads)
		}
	}
	has(present, true, 1)
	has(absent, false, 2)
	has(present, true, 2) // cached
	has(absent, false, 2) // cached
	push(t, reg.Host, "app:2")
	clock.Add(59 * time.Second)
	has(absent, false, 2) // the negative answer lives ttl/10 = 60 s
	clock.Add(time.Second)
	has(absent, true, 3) // expired: asked again, and now it is there
	clock.Add(8 * time.Minute)
	has(present, true, 3) // 9 min old: still fresh, before the refresh window
	clock.Add(time.Minute)
	has(present, true, 4) // 10 min: expired, asked synchronously
}

func TestCheckerRefreshesNearExpiryOnceInTheBackground(t *testing.T) {
	t.Parallel()
	reg := newMemRegistry(t)
	push(t, reg.Host, "app:1")
	clock := newFakeClock()
	m, reg2 := newTestMetrics(t)
	c := newTestChecker(t, newTestClient(t, ClientOptions{}), CheckerOptions{TTL: 10 * time.Minute, Now: clock.Now, Metrics: m})
	ctx := context.Background()
	img := reg.Host + "/app:1"
	if has, err := c.Has(ctx, img); !has || err != nil {
		t.Fatalf("Has = %v, %v", has, err)
	}
	clock.Add(9*time.Minute + 30*time.Second) // in the last tenth of the TTL
	for range 20 {
		if has, err := c.Has(ctx, img); !has || err != nil {
			t.Fatalf("Has in the refresh window = %v, %v; want the cached true", has, err)
		}
	}
	eventually(t, "the background refresh", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return reg.heads.Load() == 2 && !c.entries[img].refreshing.Load()
	})
	clock.Add(time.Minute) // past the first answer's expiry, within the refreshed one
	if has, err := c.Has(ctx, img); !has || err != nil {
		t.Fatalf("Has after the refresh = %v, %v", has, err)
	}
	c.Close() // waits for background work
	if h := reg.heads.Load(); h != 2 {
		t.Errorf("%d HEADs, want 2: one check and exactly one refresh", h)
	}
	if got := metricValue(t, reg2, "detour_mirror_checks_total", map[string]string{"mirror": reg.Host, "result": "cached"}); got != 21 {
		t.Errorf("cached checks = %v, want 21", got)
	}
	if got := metricValue(t, reg2, "detour_mirror_checks_total", map[string]string{"mirror": reg.Host, "result": "hit"}); got != 1 {
		t.Errorf("hit checks = %v, want 1 (a background refresh is not a Has)", got)
	}
}

func TestCheckerEvictsTheLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	reg := newMemRegistry(t)
	for _, tag := range []string{"a", "b", "c"} {
		push(t, reg.Host, "app:"+tag)
	}
	c := newTestChecker(t, newTestClient(t, ClientOptions{}), CheckerOptions{CacheSize: 2})
	ctx := context.Background()
	heads := []int64{}
	for _, tag := range []string{"a", "b", "a", "c", "a", "b"} {
		if has, err := c.Has(ctx, reg.Host+"/app:"+tag); !has || err != nil {
			t.Fatalf("Has(%s) = %v, %v", tag, has, err)
		}
		heads = append(heads, reg.heads.Load())
	}
	// a, b asked; a cached (now most recent); c asked, evicting b; a still
	// cached; b asked again.
	if want := []int64{1, 2, 2, 3, 3, 4}; !equalInts(heads, want) {
		t.Errorf("HEAD counts %v, want %v", heads, want)
	}
	if n := c.Len(); n != 2 {
		t.Errorf("Len = %d, want the bound 2", n)
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCheckerMergesConcurrentChecksIntoOneRequest(t *testing.T) {
	t.Parallel()
	reg := newMemRegistry(t)
	push(t, reg.Host, "app:1")
	c := newTestChecker(t, newTestClient(t, ClientOptions{}), CheckerOptions{})
	release := reg.holdHeads()
	defer release()
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			has, err := c.Has(context.Background(), reg.Host+"/app:1")
			if !has || err != nil {
				errs <- errors.Join(errors.New("Has = false"), err)
			}
		})
	}
	waitForWaiters(t, "(*Checker).Has(", n) // all n in flight at once
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if h := reg.heads.Load(); h != 1 {
		t.Errorf("%d concurrent checks sent %d HEADs, want 1", n, h)
	}
}

func TestCheckerReturnsByTheCallersDeadlineAndStillFillsTheCache(t *testing.T) {
	t.Parallel()
	reg := newMemRegistry(t)
	push(t, reg.Host, "app:1")
	c := newTestChecker(t, newTestClient(t, ClientOptions{Timeout: time.Minute}), CheckerOptions{})
	release := reg.holdHeads()
	defer release()
	img := reg.Host + "/app:1"
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	has, err := c.Has(ctx, img)
	if has || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Has = %v, %v; want false, context.DeadlineExceeded", has, err)
	}
	// It returned while the registry still holds the request.
	if h := reg.heads.Load(); h != 1 {
		t.Fatalf("%d HEADs in flight, want 1", h)
	}
	release()
	eventually(t, "the detached check fills the cache", func() bool {
		has, ok := c.Cached(img)
		return ok && has
	})
}

func TestCheckerMarksAFailingRegistryDownAndTriesAgainAfterCoolingDown(t *testing.T) {
	t.Parallel()
	reg := newMemRegistry(t)
	push(t, reg.Host, "app:1")
	clock := newFakeClock()
	m, preg := newTestMetrics(t)
	c := newTestChecker(t, newTestClient(t, ClientOptions{}), CheckerOptions{
		FailuresBeforeDown: 3, CoolDown: 30 * time.Second,
		ProbeInterval: time.Hour, // this test is about the checks, not the probe
		Now:           clock.Now, Metrics: m,
	})
	ctx := context.Background()
	cached := reg.Host + "/app:1"
	if has, err := c.Has(ctx, cached); !has || err != nil {
		t.Fatalf("Has = %v, %v", has, err)
	}
	up := func() float64 {
		return metricValue(t, preg, "detour_mirror_up", map[string]string{"mirror": reg.Host})
	}
	if up() != 1 {
		t.Fatalf("detour_mirror_up = %v before any failure, want 1", up())
	}

	reg.off.Store(true) // every connection dropped from now on
	for i := range 3 {
		has, err := c.Has(ctx, reg.Host+"/app:"+string(rune('a'+i)))
		if has || err == nil || errors.Is(err, ErrMarkedDown) {
			t.Fatalf("failure %d: Has = %v, %v; want the connection error itself", i+1, has, err)
		}
	}
	reqs := reg.reqs.Load()
	for _, img := range []string{reg.Host + "/app:z", cached} {
		has, err := c.Has(ctx, img)
		var down *DownError
		if has || !errors.As(err, &down) || !errors.Is(err, ErrMarkedDown) || down.Failures != 3 {
			t.Fatalf("Has(%s) once down = %v, %v; want false and a DownError after 3 failures", img, has, err)
		}
	}
	if got := reg.reqs.Load(); got != reqs {
		t.Errorf("a registry marked down was still asked (%d requests, want %d)", got, reqs)
	}
	if up() != 0 {
		t.Errorf("detour_mirror_up = %v while down, want 0", up())
	}
	if got := metricValue(t, preg, "detour_mirror_checks_total", map[string]string{"mirror": reg.Host, "result": "down"}); got != 2 {
		t.Errorf("down checks = %v, want 2", got)
	}

	clock.Add(29 * time.Second)
	if _, err := c.Has(ctx, cached); !errors.Is(err, ErrMarkedDown) {
		t.Fatalf("Has within the cooling period: %v; want ErrMarkedDown", err)
	}
	clock.Add(2 * time.Second) // cooled down; the registry is still off
	if _, err := c.Has(ctx, reg.Host+"/app:y"); err == nil || errors.Is(err, ErrMarkedDown) {
		t.Fatalf("first Has after cooling down: %v; want it to ask and fail", err)
	}
	if got := reg.reqs.Load(); got == reqs {
		t.Error("the check after the cooling period did not reach the registry")
	}
	if _, err := c.Has(ctx, reg.Host+"/app:y"); !errors.Is(err, ErrMarkedDown) {
		t.Fatalf("Has after a failed retry: %v; want ErrMarkedDown again", err)
	}

	reg.off.Store(false)
	clock.Add(31 * time.Second)
	if has, err := c.Has(ctx, reg.Host+"/app:2"); has || err != nil {
		t.Fatalf("Has once the registry answers = %v, %v; want false, nil (404)", has, err)
	}
	if has, err := c.Has(ctx, cached); !has || err != nil {
		t.Fatalf("Has(cached) after recovery = %v, %v; want true", has, err)
	}
	if up() != 1 {
		t.Errorf("detour_mirror_up = %v after recovery, want 1", up())
	}
}

func TestCheckerDoesNotMarkDownARegistryThatAnswers(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	c := newTestChecker(t, newTestClient(t, ClientOptions{}), CheckerOptions{FailuresBeforeDown: 2})
	for i := range 5 {
		has, err := c.Has(context.Background(), host+"/app:1")
		var st *StatusError
		if has || !errors.As(err, &st) || st.Status != 403 {
			t.Fatalf("Has #%d = %v, %v; want false and the 403 (not cached, not marked down)", i+1, has, err)
		}
	}
}

func TestCheckerAfterClose(t *testing.T) {
	t.Parallel()
	reg := newMemRegistry(t)
	push(t, reg.Host, "app:1")
	c := newTestChecker(t, newTestClient(t, ClientOptions{}), CheckerOptions{})
	if has, err := c.Has(context.Background(), reg.Host+"/app:1"); !has || err != nil {
		t.Fatal(has, err)
	}
	c.Close()
	c.Close() // twice is fine
	if has, err := c.Has(context.Background(), reg.Host+"/app:1"); !has || err != nil {
		t.Errorf("cached Has after Close = %v, %v; want true", has, err)
	}
	if _, err := c.Has(context.Background(), reg.Host+"/app:2"); !errors.Is(err, ErrClosed) {
		t.Errorf("uncached Has after Close: %v; want ErrClosed", err)
	}
}

func TestFirstAvailable(t *testing.T) {
	t.Parallel()
	has := newMemRegistry(t)
	push(t, has.Host, "app:1")
	lacks := newMemRegistry(t)
	dead := deadAddress(t)
	client := newTestClient(t, ClientOptions{})
	ctx := context.Background()
	img := func(host string) string { return host + "/app:1" }
	tests := []struct {
		name    string
		chain   []string
		want    int
		wantErr bool
	}{
		{"the first that has it wins", []string{img(lacks.Host), img(has.Host), img(has.Host)}, 1, false},
		{"a failing mirror is skipped", []string{img(dead), img(has.Host)}, 1, false},
		{"none has it: -1 and no error", []string{img(lacks.Host), img(lacks.Host)}, -1, false},
		{"none has it and one failed: -1 and its error", []string{img(dead), img(lacks.Host)}, -1, true},
		{"a single candidate", []string{img(has.Host)}, 0, false},
		{"an empty chain", nil, -1, false},
	}
	for _, tt := range tests {
		for _, a := range []struct {
			kind string
			a    Availability
		}{{"client", client}, {"checker", newTestChecker(t, client, CheckerOptions{})}} {
			i, err := FirstAvailable(ctx, a.a, tt.chain)
			if i != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("%s, %s: FirstAvailable = %d, %v; want %d, error %v", tt.name, a.kind, i, err, tt.want, tt.wantErr)
			}
		}
	}

	t.Run("a warm cache answers without asking", func(t *testing.T) {
		c := newTestChecker(t, client, CheckerOptions{})
		chain := []string{img(lacks.Host), img(has.Host)}
		if i, err := FirstAvailable(ctx, c, chain); i != 1 || err != nil {
			t.Fatal(i, err)
		}
		before := has.heads.Load() + lacks.heads.Load()
		if i, err := FirstAvailable(ctx, c, chain); i != 1 || err != nil {
			t.Fatal(i, err)
		}
		if after := has.heads.Load() + lacks.heads.Load(); after != before {
			t.Errorf("warm FirstAvailable sent %d HEADs", after-before)
		}
	})
	t.Run("an unanswered first candidate keeps the choice open until the deadline", func(t *testing.T) {
		slow := newMemRegistry(t)
		push(t, slow.Host, "app:1")
		release := slow.holdHeads()
		defer release()
		c := newTestChecker(t, client, CheckerOptions{})
		ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		i, err := FirstAvailable(ctx, c, []string{img(slow.Host), img(has.Host)})
		if i != -1 || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("FirstAvailable = %d, %v; want -1, context.DeadlineExceeded", i, err)
		}
	})
}

func TestCheckerCachedFirstSettlesAChainFromTheCacheAlone(t *testing.T) {
	t.Parallel()
	reg := newMemRegistry(t)
	push(t, reg.Host, "app:1")
	clock := newFakeClock()
	m, preg := newTestMetrics(t)
	c := newTestChecker(t, newTestClient(t, ClientOptions{}), CheckerOptions{TTL: 10 * time.Minute, Now: clock.Now, Metrics: m})
	ctx := context.Background()
	lacks, lacks2, has := reg.Host+"/lacks:1", reg.Host+"/lacks:2", reg.Host+"/app:1"
	first := func(chain []string, wantIndex int, wantOK bool) {
		t.Helper()
		i, ok := c.CachedFirst(chain)
		if ok != wantOK || ok && i != wantIndex {
			t.Fatalf("CachedFirst(%v) = %d, %v; want %d, %v", chain, i, ok, wantIndex, wantOK)
		}
	}
	check := func(img string) {
		t.Helper()
		if _, err := c.Has(ctx, img); err != nil {
			t.Fatal(err)
		}
	}
	chain := []string{lacks, has}
	first(chain, 0, false) // nothing cached
	check(lacks)
	first(chain, 0, false) // the first is cached absent, the second unknown
	check(has)
	first(chain, 1, true)
	first([]string{has, lacks2}, 0, true) // the first has it: the rest does not matter
	check(lacks2)
	first([]string{lacks, lacks2}, -1, true)
	first(nil, -1, true)
	if heads := reg.heads.Load(); heads != 3 {
		t.Errorf("%d HEADs, want 3: CachedFirst never asks the registry", heads)
	}
	// Lookups counted as cached: 1 + 2 + 1 + 2 (the misses are not counted).
	if got := metricValue(t, preg, "detour_mirror_checks_total", map[string]string{"mirror": reg.Host, "result": "cached"}); got != 6 {
		t.Errorf("cached checks = %v, want 6", got)
	}
	clock.Add(time.Minute) // the negative answers expire
	first(chain, 0, false)
	first([]string{has}, 0, true) // the positive one lives 10 m
}

// Lookups take no lock while answers are stored, refreshed and evicted:
// under -race, many readers and writers of a small cache, and every answer
// right.
func TestCheckerLookupsRaceWithStoresAndEvictions(t *testing.T) {
	t.Parallel()
	reg := newMemRegistry(t)
	var present, absent []string
	for i := range 6 {
		push(t, reg.Host, fmt.Sprintf("app:%d", i))
		present = append(present, fmt.Sprintf("%s/app:%d", reg.Host, i))
		absent = append(absent, fmt.Sprintf("%s/gone:%d", reg.Host, i))
	}
	c := newTestChecker(t, newTestClient(t, ClientOptions{}), CheckerOptions{CacheSize: 4})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 8 {
		wg.Go(func() {
			for i := range 300 {
				k := (i + w) % 6
				if has, err := c.Has(ctx, present[k]); err != nil || !has {
					errs <- fmt.Errorf("Has(%s) = %v, %v", present[k], has, err)
					return
				}
				if has, err := c.Has(ctx, absent[k]); err != nil || has {
					errs <- fmt.Errorf("Has(%s) = %v, %v", absent[k], has, err)
					return
				}
				if idx, ok := c.CachedFirst([]string{absent[k], present[k]}); ok && idx != 1 {
					errs <- fmt.Errorf("CachedFirst = %d, want 1 when settled", idx)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := c.Len(); n > 4 {
		t.Errorf("Len = %d over the bound 4", n)
	}
}
