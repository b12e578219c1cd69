package admission

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/detourhq/detour/internal/config"
	"github.com/detourhq/detour/internal/rules"
)

// Checker reports whether a registry has an image: for detour, whether
// `HEAD /v2/<name>/manifests/<reference>` on the image's registry answers 200
// (SPEC §6). Has must return soon after ctx is done, and be safe for
// concurrent use. internal/registry provides the real one.
type Checker interface {
	Has(ctx context.Context, image string) (bool, error)
}

// CachedChecker is a Checker that can also answer from memory at once; ok is
// false when it would have to ask the registry. In a busy cluster nearly every
// answer is cached: chains resolved that way need no goroutine, channel or
// timer, which keeps checking nearly free on the hot path
// (hack/load/run-check.sh). internal/registry's Checker is one.
type CachedChecker interface {
	Checker
	Cached(image string) (has, ok bool)
}

// ChainCachedChecker is a CachedChecker that can settle a whole chain in one
// call: index of the first image cached as present, -1 when all are cached
// as absent, ok false when an image before the first "has" is not cached.
// internal/registry's Checker is one: one clock read per chain instead of
// one per image, and no lock.
type ChainCachedChecker interface {
	CachedChecker
	CachedFirst(chain []string) (index int, ok bool)
}

// checkCandidates chooses, for every rewritten candidate, the first image of
// its decision's fallback chain that the Checker says exists. All images of
// the Pod are checked in parallel, each chain in order, all within the
// policy's budget. When no entry has the image, or the budget runs out, the
// candidate is dropped, so the original image is kept, and a warning says
// why. Escaped candidates are not checked: the escape asks for the image as
// written.
func checkCandidates(ctx context.Context, st *state, p *Policy, cands []candidate) ([]candidate, []string) {
	// One check per distinct image: a Pod often runs the same image twice.
	// inputs[k] is the image whose chain is chains[k]; a Pod has a handful of
	// images, so a linear search beats a map. All of it lives in st.
	inputs, flat, ends := st.inputs[:0], st.flat[:0], st.ends[:0]
	for i := range cands {
		c := &cands[i]
		if c.d.Reason == rules.Rewritten && !slices.Contains(inputs, c.d.Input) {
			inputs = append(inputs, c.d.Input)
			flat = c.d.AppendChain(flat)
			ends = append(ends, len(flat))
		}
	}
	chains := st.chains[:0]
	for k, end := range ends {
		start := 0
		if k > 0 {
			start = ends[k-1]
		}
		chains = append(chains, flat[start:end:end])
	}
	st.inputs, st.flat, st.ends, st.chains = inputs, flat, ends, chains
	if len(chains) == 0 {
		return cands, nil
	}
	budget := p.Check.Budget
	if budget <= 0 {
		budget = config.DefaultCheckBudget
	}
	picks := slices.Grow(st.picks[:0], len(chains))[:len(chains)]
	st.picks = picks
	var pending []int // chains the cache cannot settle
	cached, _ := p.Checker.(CachedChecker)
	for i, chain := range chains {
		if cached != nil {
			if pk, ok := fromCache(cached, chain); ok {
				picks[i] = pk
				continue
			}
		}
		pending = append(pending, i)
	}
	if len(pending) > 0 {
		// Copies: a check that overruns the budget may still read its chain
		// after this review has returned st to the pool.
		rest := make([][]string, len(pending))
		for j, i := range pending {
			rest[j] = slices.Clone(chains[i])
		}
		for j, pk := range choose(ctx, p.Checker, budget, rest) {
			picks[pending[j]] = pk
		}
	}
	var warnings []string
	kept := cands[:0]
	for _, c := range cands {
		if c.d.Reason != rules.Rewritten {
			kept = append(kept, c)
			continue
		}
		k := slices.Index(inputs, c.d.Input)
		pk := picks[k]
		if pk.index < 0 {
			warnings = append(warnings, "detour: "+c.field()+": "+pk.why+"; "+quoteImage(c.d.Input)+" left as written")
			continue
		}
		c.to = chains[k][pk.index]
		c.choice = choiceText(pk.index, len(chains[k]))
		kept = append(kept, c)
	}
	return kept, warnings
}

// choiceTexts holds "mirror I of N" for the chain lengths users write, so
// the hot path does not build the same few strings on every request.
var choiceTexts = func() (t [maxCachedChain][maxCachedChain]string) {
	for n := 1; n <= maxCachedChain; n++ {
		for i := 0; i < n; i++ {
			t[n-1][i] = "mirror " + strconv.Itoa(i+1) + " of " + strconv.Itoa(n)
		}
	}
	return t
}()

// maxCachedChain is the longest chain whose choice texts are prepared.
const maxCachedChain = 8

// choiceText says which mirror of a chain of n was chosen (index from 0).
func choiceText(index, n int) string {
	if n <= maxCachedChain {
		return choiceTexts[n-1][index]
	}
	return "mirror " + strconv.Itoa(index+1) + " of " + strconv.Itoa(n)
}

// maxWarningError is how much of a Checker's error a warning quotes.
const maxWarningError = 80

// pick is the outcome of checking one chain.
type pick struct {
	index int    // position of the chosen image in the chain, -1 for none
	why   string // for none: why, in a few words
}

// choose checks every chain in parallel within budget and returns one pick
// per chain. It returns by the deadline even if a Checker ignores ctx; such a
// check's goroutine ends when Has returns.
func choose(ctx context.Context, c Checker, budget time.Duration, chains [][]string) []pick {
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	type result struct {
		chain int
		pick  pick
	}
	results := make(chan result, len(chains)) // buffered: a late sender never blocks
	for i, chain := range chains {
		go func() {
			results <- result{i, checkChain(ctx, c, chain)}
		}()
	}
	picks := make([]pick, len(chains))
	for i := range picks {
		picks[i] = pick{index: -1, why: "availability check exceeded its " + budget.String() + " budget"}
	}
	for range chains {
		select {
		case r := <-results:
			if r.pick.index >= 0 || r.pick.why != "" {
				picks[r.chain] = r.pick
			}
		case <-ctx.Done():
			return picks
		}
	}
	return picks
}

// fromCache settles a chain from cached answers alone: ok is false when an
// entry before the first cached "has" has no cached answer.
func fromCache(c CachedChecker, chain []string) (pick, bool) {
	if cc, ok := c.(ChainCachedChecker); ok {
		i, ok := cc.CachedFirst(chain)
		switch {
		case !ok:
			return pick{}, false
		case i >= 0:
			return pick{index: i}, true
		}
		return pick{index: -1, why: "no mirror has the image"}, true
	}
	for i, image := range chain {
		has, ok := c.Cached(image)
		if !ok {
			return pick{}, false
		}
		if has {
			return pick{index: i}, true
		}
	}
	return pick{index: -1, why: "no mirror has the image"}, true
}

// checkChain returns the first image of chain that c has.
func checkChain(ctx context.Context, c Checker, chain []string) (p pick) {
	defer func() {
		// A Checker's panic must not take the webhook down: it runs outside
		// the HTTP server's own recovery.
		if r := recover(); r != nil {
			p = pick{index: -1, why: fmt.Sprintf("availability check failed: %v", r)}
		}
	}()
	var errs []error
	for i, image := range chain {
		ok, err := c.Has(ctx, image)
		if ctx.Err() != nil {
			return pick{index: -1} // choose says which budget
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			return pick{index: i}
		}
	}
	if len(errs) == len(chain) {
		msg := errs[0].Error()
		if len(msg) > maxWarningError {
			msg = msg[:maxWarningError] + "…"
		}
		return pick{index: -1, why: "availability check failed: " + msg}
	}
	return pick{index: -1, why: "no mirror has the image"}
}
