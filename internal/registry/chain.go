package registry

import (
	"context"
	"errors"
	"fmt"
)

// Availability answers whether an image's registry has it. *Checker and
// *Client implement it; so does admission's own Checker interface.
type Availability interface {
	Has(ctx context.Context, image string) (bool, error)
}

// cacheReader is implemented by *Checker: answers without waiting.
type cacheReader interface {
	Cached(image string) (has, ok bool)
}

var (
	_ Availability = (*Checker)(nil)
	_ Availability = (*Client)(nil)
	_ cacheReader  = (*Checker)(nil)
)

// FirstAvailable chooses from a fallback chain (rules.Decision.Chain()) the
// first image whose registry has it, and returns its index. A candidate
// that fails (down, timeout, error) counts as not having it, so the choice
// moves on to the next.
//
// The candidates are checked in parallel, and FirstAvailable returns as
// soon as the choice is known: a candidate has the image and every one
// before it answered. When a leading run of candidates is answered from the
// cache (a *Checker), no goroutine is started for them. It returns -1 when
// no candidate has the image, with the candidates' errors joined (nil if
// all answered no), and -1 with an error wrapping ctx.Err() when ctx ends
// before the choice is known: the caller then keeps the original image.
func FirstAvailable(ctx context.Context, a Availability, chain []string) (int, error) {
	start := 0
	if cr, ok := a.(cacheReader); ok {
		for start < len(chain) {
			has, ok := cr.Cached(chain[start])
			if !ok {
				break
			}
			if has {
				return start, nil
			}
			start++
		}
	}
	rest := chain[start:]
	switch len(rest) {
	case 0:
		return -1, nil
	case 1:
		has, err := a.Has(ctx, rest[0])
		if has {
			return start, nil
		}
		return -1, err
	}
	return firstOf(ctx, a, chain, start)
}

// firstOf is FirstAvailable's parallel part over chain[start:], apart so
// that the warm path does not move ctx to the heap.
func firstOf(ctx context.Context, a Availability, chain []string, start int) (int, error) {
	rest := chain[start:]
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // the candidates still asked return at once
	type answer struct {
		i   int
		has bool
		err error
	}
	answers := make(chan answer, len(rest)) // buffered: senders never block
	for i, img := range rest {
		go func() {
			has, err := a.Has(ctx, img)
			answers <- answer{i, has, err}
		}()
	}
	const (
		pending = iota
		yes
		no
	)
	state := make([]uint8, len(rest))
	errs := make([]error, len(rest))
	next := 0 // first candidate not known to lack the image
	for range rest {
		var ans answer
		select {
		case ans = <-answers:
		case <-ctx.Done():
			return -1, fmt.Errorf("choosing a mirror for %s: %w", chain[0], ctx.Err())
		}
		if ans.has {
			state[ans.i] = yes
		} else {
			state[ans.i], errs[ans.i] = no, ans.err
		}
		for next < len(rest) && state[next] == no {
			next++
		}
		if next < len(rest) && state[next] == yes {
			return start + next, nil
		}
	}
	return -1, errors.Join(errs...)
}
