package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// Defaults of CheckerOptions.
const (
	// DefaultTTL is how long a positive answer is cached; the spec's
	// check.ttl. Negative answers live DefaultTTL/negativeDivisor.
	DefaultTTL = 10 * time.Minute
	// DefaultCacheSize bounds the cache, in entries. An entry costs about
	// 250 bytes (the image string ~80, the entry ~100, its map slot ~70), so
	// the full cache holds about 2.5 MB: room for every image × chain entry
	// of a large cluster (a few thousand) several times over.
	DefaultCacheSize = 10000
	// DefaultFailuresBeforeDown is how many consecutive outages (network
	// errors, timeouts, 5xx, 429) mark a registry down: one lost packet
	// must not, three in a row are a pattern.
	DefaultFailuresBeforeDown = 3
	// DefaultCoolDown is how long a registry stays marked down before checks
	// try it again; the background probe runs at this interval too. 30 s
	// keeps a dead mirror from costing each admission a timeout, yet brings a
	// restarted one back within a Deployment rollout.
	DefaultCoolDown = 30 * time.Second
	// negativeDivisor: a negative answer lives ttl/negativeDivisor (spec §6).
	negativeDivisor = 10
	// refreshDivisor: a positive entry is refreshed in the background once
	// less than ttl/refreshDivisor of its life is left.
	refreshDivisor = 10
)

// Errors of a Checker.
var (
	// ErrMarkedDown: the registry failed repeatedly and is not asked for a
	// while; the error is a *DownError.
	ErrMarkedDown = errors.New("registry marked down")
	// ErrClosed: the Checker was closed and asks no registry any more.
	ErrClosed = errors.New("checker closed")
)

// DownError says that a registry is marked down. It matches ErrMarkedDown.
type DownError struct {
	// Registry is the registry host.
	Registry string
	// Until is when checks will try it again (by the Checker's clock).
	Until time.Time
	// Failures is the number of consecutive outages so far.
	Failures int
	// Last is the last outage's error.
	Last error
}

func (e *DownError) Error() string {
	return fmt.Sprintf("registry %s is marked down until %s after %d consecutive failures (last: %s)",
		e.Registry, e.Until.Format(time.TimeOnly), e.Failures, Explain(e.Last))
}

// Is makes errors.Is(err, ErrMarkedDown) true.
func (e *DownError) Is(target error) bool { return target == ErrMarkedDown }

// Result is the outcome of one Checker.Has, as counted in metrics.
type Result uint8

// The results.
const (
	// ResultHit: the registry was asked and has the image.
	ResultHit Result = iota
	// ResultMiss: the registry was asked and lacks the image.
	ResultMiss
	// ResultError: the check failed, or the caller's context ended first.
	ResultError
	// ResultDown: the registry is marked down; it was not asked.
	ResultDown
	// ResultCached: answered from the cache.
	ResultCached
	numResults
)

var resultNames = [numResults]string{"hit", "miss", "error", "down", "cached"}

func (r Result) String() string {
	if r < numResults {
		return resultNames[r]
	}
	return "unknown"
}

// Metrics receives what a Checker does. Implementations must be safe for
// concurrent use and cheap: Check is on the admission hot path.
type Metrics interface {
	// Check counts one Has on a registry with its result.
	Check(registry string, r Result)
	// Up records whether a registry is up (not marked down).
	Up(registry string, up bool)
}

// CheckCounter is a Metrics that can hand out the function counting one
// registry's checks with one result, so that counting a cached answer on the
// admission hot path looks nothing up. Prometheus is one.
type CheckCounter interface {
	CheckCounter(registry string, r Result) func()
}

// CheckerOptions configures a Checker. The zero value uses the defaults.
type CheckerOptions struct {
	// TTL of positive answers (0: DefaultTTL); negative ones live TTL/10.
	TTL time.Duration
	// CacheSize bounds the cache in entries (0: DefaultCacheSize).
	CacheSize int
	// FailuresBeforeDown consecutive outages mark a registry down (0:
	// DefaultFailuresBeforeDown).
	FailuresBeforeDown int
	// CoolDown is how long a registry stays marked down (0:
	// DefaultCoolDown).
	CoolDown time.Duration
	// ProbeInterval is how often a registry marked down is probed in the
	// background (0: CoolDown).
	ProbeInterval time.Duration
	// Metrics receives counts (nil: none).
	Metrics Metrics
	// Logger receives registries going down and coming back (nil:
	// discarded).
	Logger *slog.Logger
	// Now is the clock of the cache and of down-marking (nil: time.Now).
	// Tests inject one; request timeouts always use real time.
	Now func() time.Time
}

// Checker answers Has from a cache in front of a Client; see the package
// documentation for the policy. It is safe for concurrent use. Close it to
// stop its background goroutines.
type Checker struct {
	client        *Client
	ttl, negTTL   time.Duration
	refreshBefore time.Duration
	size          int
	downAfter     int
	coolDown      time.Duration
	probeInterval time.Duration
	metrics       Metrics
	log           *slog.Logger
	now           func() time.Time

	ctx    context.Context // ends on Close; detached checks run under it
	cancel context.CancelFunc
	group  singleflight.Group
	wg     sync.WaitGroup

	// index is the lock-free view of entries that lookups use: written
	// under mu together with entries, read without it.
	index      sync.Map // string -> *entry
	mu         sync.Mutex
	entries    map[string]*entry
	head, tail *entry // most and least recently used
	hosts      map[string]*hostState
	closed     bool
}

// entry is one cached answer, a node of the LRU list. Lookups read it
// without c.mu: the answer is replaced whole, and the flags are atomic.
type entry struct {
	key        string
	host       *hostState
	ans        atomic.Pointer[answer]
	refreshing atomic.Bool
	used       atomic.Int64 // UnixNano of the last move to the front
	prev, next *entry       // under c.mu
}

// answer is what an entry says, until when, and when to refresh it.
type answer struct {
	has       bool
	expires   time.Time
	refreshAt time.Time // positive answers only
}

// hostState is the health of one registry.
type hostState struct {
	name        string
	countCached func()       // counts a cached answer: every lookup on the hot path
	downUntil   atomic.Int64 // UnixNano by the Checker's clock; 0 when up

	mu       sync.Mutex
	failures int
	last     error
	probing  bool
}

func (h *hostState) isDown(now time.Time) bool {
	u := h.downUntil.Load()
	return u != 0 && now.UnixNano() < u
}

// NewChecker makes a Checker asking registries through client.
func NewChecker(client *Client, o CheckerOptions) *Checker {
	c := &Checker{
		client:        client,
		ttl:           o.TTL,
		size:          o.CacheSize,
		downAfter:     o.FailuresBeforeDown,
		coolDown:      o.CoolDown,
		probeInterval: o.ProbeInterval,
		metrics:       o.Metrics,
		log:           o.Logger,
		now:           o.Now,
		entries:       map[string]*entry{},
		hosts:         map[string]*hostState{},
	}
	if c.ttl <= 0 {
		c.ttl = DefaultTTL
	}
	c.negTTL = c.ttl / negativeDivisor
	c.refreshBefore = c.ttl / refreshDivisor
	if c.size <= 0 {
		c.size = DefaultCacheSize
	}
	if c.downAfter <= 0 {
		c.downAfter = DefaultFailuresBeforeDown
	}
	if c.coolDown <= 0 {
		c.coolDown = DefaultCoolDown
	}
	if c.probeInterval <= 0 {
		c.probeInterval = c.coolDown
	}
	if c.metrics == nil {
		c.metrics = noMetrics{}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// Close stops the background refreshes and probes and waits for them and
// for detached checks in flight. Has still answers from the cache
// afterwards; what it would have to ask fails with ErrClosed.
func (c *Checker) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// Len returns the number of cached answers.
func (c *Checker) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Has reports whether the image's registry has it: from the cache when it
// can, else by asking, sharing the request with concurrent callers. It
// returns by ctx's deadline: false and an error wrapping ctx.Err() when the
// registry has not answered by then.
func (c *Checker) Has(ctx context.Context, image string) (bool, error) {
	now := c.now()
	if has, ok := c.cached(image, now); ok {
		return has, nil
	}
	r, err := parseImage(image)
	if err != nil {
		return false, err
	}
	h := c.host(r.host)
	if h.isDown(now) {
		c.metrics.Check(h.name, ResultDown)
		return false, fmt.Errorf("checking %s: %w", image, c.downError(h))
	}
	if err := ctx.Err(); err != nil {
		c.metrics.Check(h.name, ResultError)
		return false, fmt.Errorf("checking %s: %w", image, err)
	}
	ch := c.group.DoChan(image, func() (any, error) { return c.fetch(image, h) })
	select {
	case res := <-ch:
		if res.Err != nil {
			c.metrics.Check(h.name, ResultError)
			return false, res.Err
		}
		has := res.Val.(bool)
		if has {
			c.metrics.Check(h.name, ResultHit)
		} else {
			c.metrics.Check(h.name, ResultMiss)
		}
		return has, nil
	case <-ctx.Done():
		c.metrics.Check(h.name, ResultError)
		return false, fmt.Errorf("checking %s: %w", image, ctx.Err())
	}
}

// Cached answers from the cache only: ok is false when the cache has no
// live answer (or the registry is marked down) and Has would have to ask.
// A cached answer counts as a Has in metrics and may start a refresh.
func (c *Checker) Cached(image string) (has, ok bool) {
	return c.cached(image, c.now())
}

func (c *Checker) cached(image string, now time.Time) (has, ok bool) {
	has, ok, h, refresh := c.lookup(image, now)
	c.settle(image, h, ok, refresh)
	return has, ok
}

// CachedFirst settles a fallback chain from the cache alone, as the
// admission hot path needs it: index is the position of the first image
// cached as present, -1 when every image is cached as absent; ok is false
// when an image before the first cached "has" is not cached. It reads the
// clock once for the whole chain and, like every cache lookup, takes no
// lock.
func (c *Checker) CachedFirst(chain []string) (index int, ok bool) {
	now := c.now()
	for i, image := range chain {
		has, found, h, refresh := c.lookup(image, now)
		if !found {
			return 0, false
		}
		c.settle(image, h, true, refresh)
		if has {
			return i, true
		}
	}
	return -1, true
}

// lookup finds image in the cache without c.mu. refresh says a background
// refresh was claimed for it, which settle must start.
func (c *Checker) lookup(image string, now time.Time) (has, ok bool, h *hostState, refresh bool) {
	v, found := c.index.Load(image)
	if !found {
		return false, false, nil, false
	}
	e := v.(*entry)
	a := e.ans.Load()
	if !now.Before(a.expires) || e.host.isDown(now) {
		return false, false, nil, false
	}
	// Recency to the second is all the LRU needs: an entry used again
	// within a second is not moved, so busy lookups take no lock.
	if now.UnixNano()-e.used.Load() >= int64(time.Second) {
		c.mu.Lock()
		if c.entries[image] == e { // not evicted meanwhile
			c.moveToFront(e)
		}
		c.mu.Unlock()
		e.used.Store(now.UnixNano())
	}
	if a.has && !now.Before(a.refreshAt) && e.refreshing.CompareAndSwap(false, true) {
		c.mu.Lock()
		if c.closed {
			e.refreshing.Store(false)
		} else {
			refresh = true
			c.wg.Add(1) // under mu with closed false: Close has not begun waiting
		}
		c.mu.Unlock()
	}
	return a.has, true, e.host, refresh
}

// settle does, outside c.mu, what a cache hit leaves to do: count it and
// start the refresh it claimed.
func (c *Checker) settle(image string, h *hostState, hit, refresh bool) {
	if !hit {
		return
	}
	if refresh {
		go c.refresh(image, h)
	}
	h.countCached()
}

// host returns the state of a registry, making it on first use.
func (c *Checker) host(name string) *hostState {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := c.hosts[name]; ok {
		return h
	}
	h := &hostState{name: name}
	if cc, ok := c.metrics.(CheckCounter); ok {
		h.countCached = cc.CheckCounter(name, ResultCached)
	} else {
		h.countCached = func() { c.metrics.Check(name, ResultCached) }
	}
	c.hosts[name] = h
	c.metrics.Up(name, true)
	return h
}

// track counts a goroutine or detached check in c.wg unless closed.
func (c *Checker) track() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	return true
}

// fetch asks the registry, detached from the callers, and records the
// answer in the cache and the registry's health.
func (c *Checker) fetch(image string, h *hostState) (bool, error) {
	if !c.track() {
		return false, fmt.Errorf("checking %s: %w", image, ErrClosed)
	}
	defer c.wg.Done()
	has, err := c.client.Has(c.ctx, image)
	now := c.now()
	if err != nil {
		switch {
		case c.ctx.Err() != nil:
			err = fmt.Errorf("checking %s: %w", image, ErrClosed)
		case isOutage(err):
			c.failed(h, err, now)
		default:
			c.answered(h) // the registry answered, just not with a yes or no
		}
		return false, err
	}
	c.answered(h)
	c.store(image, h, has, now)
	return has, nil
}

// refresh re-checks a positive entry in the background (tracked by the
// caller's wg.Add).
func (c *Checker) refresh(image string, h *hostState) {
	defer c.wg.Done()
	ch := c.group.DoChan(image, func() (any, error) { return c.fetch(image, h) })
	var failed bool
	select {
	case res := <-ch:
		failed = res.Err != nil
	case <-c.ctx.Done():
	}
	c.mu.Lock() // serialised with store, which replaces answers
	if e := c.entries[image]; e != nil && e.refreshing.Load() {
		if failed {
			// Serve the old answer until it expires; try again halfway
			// there rather than on every Has.
			now := c.now()
			a := *e.ans.Load()
			a.refreshAt = now.Add(a.expires.Sub(now) / 2)
			e.ans.Store(&a)
		}
		e.refreshing.Store(false)
	}
	c.mu.Unlock()
}

// isOutage tells errors that count towards marking a registry down:
// anything but an HTTP answer, and 5xx and 429 answers.
func isOutage(err error) bool {
	var st *StatusError
	switch {
	case errors.As(err, &st):
		return st.Status >= 500 || st.Status == http.StatusTooManyRequests
	case errors.Is(err, ErrUnauthorized), errors.Is(err, ErrDigestMismatch), errors.Is(err, ErrChallengeSyntax):
		return false
	}
	return true
}

// failed records an outage; the downAfter-th in a row marks the registry
// down and starts its probe.
func (c *Checker) failed(h *hostState, err error, now time.Time) {
	h.mu.Lock()
	h.failures++
	h.last = err
	var newlyDown, probe bool
	if h.failures >= c.downAfter {
		newlyDown = h.downUntil.Load() == 0
		h.downUntil.Store(now.Add(c.coolDown).UnixNano())
		if !h.probing {
			h.probing, probe = true, true
		}
	}
	failures := h.failures
	h.mu.Unlock()
	if newlyDown {
		c.log.Warn("registry marked down", "registry", h.name, "failures", failures, "for", c.coolDown, "error", err)
		c.metrics.Up(h.name, false)
	}
	if probe {
		if c.track() {
			go c.probe(h)
		} else {
			h.mu.Lock()
			h.probing = false
			h.mu.Unlock()
		}
	}
}

// answered records that the registry answered: it is up.
func (c *Checker) answered(h *hostState) {
	h.mu.Lock()
	wasDown := h.downUntil.Load() != 0
	h.failures, h.last = 0, nil
	h.downUntil.Store(0)
	h.mu.Unlock()
	if wasDown {
		c.log.Info("registry is back", "registry", h.name)
		c.metrics.Up(h.name, true)
	}
}

func (c *Checker) downError(h *hostState) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return &DownError{Registry: h.name, Until: time.Unix(0, h.downUntil.Load()), Failures: h.failures, Last: h.last}
}

// probe pings a registry marked down every probeInterval until it answers
// (any status below 500) or a check finds it back (tracked by wg).
func (c *Checker) probe(h *hostState) {
	defer c.wg.Done()
	t := time.NewTimer(c.probeInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			h.mu.Lock()
			h.probing = false
			h.mu.Unlock()
			return
		case <-t.C:
		}
		p := Ping{}
		if h.downUntil.Load() != 0 {
			p = c.client.Ping(c.ctx, h.name)
		}
		h.mu.Lock()
		back := h.downUntil.Load() == 0 || p.Reachable && p.Status < 500
		if back || c.ctx.Err() != nil {
			h.probing = false
		}
		h.mu.Unlock()
		switch {
		case c.ctx.Err() != nil:
			return
		case back:
			c.answered(h)
			return
		}
		err := p.Err
		if err == nil {
			err = &StatusError{Status: p.Status}
		}
		c.failed(h, err, c.now())
		t.Reset(c.probeInterval)
	}
}

// store caches an answer, evicting the least recently used entry when full.
func (c *Checker) store(image string, h *hostState, has bool, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := &answer{has: has}
	if has {
		a.expires = now.Add(c.ttl)
		a.refreshAt = a.expires.Add(-c.refreshBefore)
	} else {
		a.expires = now.Add(c.negTTL)
		a.refreshAt = a.expires
	}
	e := c.entries[image]
	if e != nil {
		e.ans.Store(a)
		c.moveToFront(e)
		return
	}
	e = &entry{key: image, host: h}
	e.ans.Store(a)
	c.entries[image] = e
	c.index.Store(image, e)
	c.pushFront(e)
	for len(c.entries) > c.size {
		old := c.tail
		c.unlink(old)
		delete(c.entries, old.key)
		c.index.Delete(old.key)
	}
}

// The LRU list, under c.mu.

func (c *Checker) pushFront(e *entry) {
	e.prev, e.next = nil, c.head
	if c.head != nil {
		c.head.prev = e
	}
	c.head = e
	if c.tail == nil {
		c.tail = e
	}
}

func (c *Checker) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		c.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (c *Checker) moveToFront(e *entry) {
	if c.head == e {
		return
	}
	c.unlink(e)
	c.pushFront(e)
}

type noMetrics struct{}

func (noMetrics) Check(string, Result) {}
func (noMetrics) Up(string, bool)      {}
