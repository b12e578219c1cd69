package rules

import (
	"errors"
	"strings"

	"github.com/distribution/reference"
)

// Reason says why a Decision came out as it did.
type Reason uint8

// The reasons, in the order the rewrite steps consider them.
const (
	// NoMatch: no rule matches; the image is unchanged.
	NoMatch Reason = iota
	// Rewritten: a rule matched and Image is the first mirror of its chain.
	Rewritten
	// Escaped: the escape prefix was removed; nothing else changed.
	Escaped
	// AlreadyMirrored: the image lies under some rule's To; unchanged.
	AlreadyMirrored
	// Invalid: the string is not a valid reference; unchanged, Err says why.
	Invalid
	// Unrepresentable: a rule matched but the mirror name it gives would not be
	// a valid reference (a "{registry}" with a port, a path over 255
	// characters); unchanged, Err says why.
	Unrepresentable
)

var reasonNames = [...]string{"no-match", "rewritten", "escaped", "already-mirrored", "invalid", "unrepresentable"}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// ErrUnrepresentable is the Err of an Unrepresentable decision.
var ErrUnrepresentable = errors.New("the mirror name would not be a valid reference")

// Decision is the outcome of rewriting one image string.
type Decision struct {
	// Input is the image as given.
	Input string
	// Image is the image to admit: Input itself unless Reason is Rewritten or
	// Escaped.
	Image string
	// Reason says which rewrite step decided.
	Reason Reason
	// Rule is the matching rule for Rewritten and Unrepresentable, else nil.
	Rule *Rule
	// Err explains Invalid and Unrepresentable decisions.
	Err error

	rule      *compiled
	registry  string // normalised source host, for "{registry}"
	restA     string // rest of the path after From: restA + restB
	restB     string
	suffix    string
	candidate int // index in the chain of Image
}

// Changed reports whether Image differs from Input.
func (d Decision) Changed() bool { return d.Image != d.Input }

// Chain returns the image in every mirror of the matching rule's chain, in
// order; Chain()[0] is Image. It is nil unless Reason is Rewritten. Entries
// that would not be valid references are left out.
func (d Decision) Chain() []string {
	if d.Reason != Rewritten {
		return nil
	}
	return d.AppendChain(make([]string, 0, len(d.rule.to)))
}

// AppendChain appends Chain() to dst, for callers that reuse a slice.
func (d Decision) AppendChain(dst []string) []string {
	if d.Reason != Rewritten {
		return dst
	}
	out := dst
	for i, t := range d.rule.to {
		if i == d.candidate {
			out = append(out, d.Image) // built already
			continue
		}
		if img, ok := d.build(t); ok {
			out = append(out, img)
		}
	}
	return out
}

// Rewrite decides which image to admit for s. It never fails: when it cannot
// rewrite, Image is s, byte for byte, and Reason says why.
func (s *Set) Rewrite(in string) Decision {
	d := Decision{Input: in, Image: in}
	if s.escape != "" {
		if rest, ok := strings.CutPrefix(in, s.escape); ok {
			d.Image, d.Reason = rest, Escaped
			return d
		}
	}
	im, err := parseImage(in)
	if err != nil {
		d.Reason, d.Err = Invalid, err
		return d
	}
	host := normaliseHost(im.host)
	libPrefix := ""
	if host == "docker.io" && strings.IndexByte(im.path, '/') < 0 {
		libPrefix = "library/" // a Docker Hub official image
	}
	if s.isMirrored(host, libPrefix, im.path) {
		d.Reason = AlreadyMirrored
		return d
	}
	c, a, b := s.match(host, libPrefix, im.path)
	if c == nil {
		return d
	}
	d.rule, d.Rule, d.registry, d.restA, d.restB, d.suffix = c, &c.rule, host, a, b, im.suffix
	for i, t := range c.to {
		if img, ok := d.build(t); ok {
			d.Image, d.Reason, d.candidate = img, Rewritten, i
			return d
		}
	}
	d.Reason, d.Err = Unrepresentable, ErrUnrepresentable
	return d
}

// match finds the rule with the longest From matching host and path (which is
// libPrefix + path), and the rest of the path after From.
func (s *Set) match(host, libPrefix, path string) (*compiled, string, string) {
	for _, c := range s.byHost[host] {
		if a, b, ok := cutPathPrefix(libPrefix, path, c.path); ok {
			return c, a, b
		}
	}
	if s.wildcard != nil {
		return s.wildcard, libPrefix, path
	}
	return nil, "", ""
}

// isMirrored reports whether the image lies under some rule's To.
func (s *Set) isMirrored(host, libPrefix, path string) bool {
	for _, p := range s.under[host] {
		if _, _, ok := cutPathPrefix(libPrefix, path, p); ok {
			return true
		}
	}
	return false
}

// cutPathPrefix reports whether the path a+b equals prefix or continues it
// after a "/", and returns the rest as two parts (no allocation).
func cutPathPrefix(a, b, prefix string) (string, string, bool) {
	if prefix == "" {
		return a, b, true
	}
	if len(prefix) <= len(a) {
		if a[:len(prefix)] != prefix {
			return "", "", false
		}
		rest := a[len(prefix):]
		switch {
		case rest == "" && b == "":
			return "", "", true
		case rest == "":
			if b[0] != '/' {
				return "", "", false
			}
			return "", b[1:], true
		case rest[0] != '/':
			return "", "", false
		}
		return rest[1:], b, true
	}
	if prefix[:len(a)] != a {
		return "", "", false
	}
	p := prefix[len(a):]
	if !strings.HasPrefix(b, p) {
		return "", "", false
	}
	rest := b[len(p):]
	if rest == "" {
		return "", "", true
	}
	if rest[0] != '/' {
		return "", "", false
	}
	return "", rest[1:], true
}

// build makes the image under one mirror. It allocates once.
func (d *Decision) build(t target) (string, bool) {
	sep := "/"
	if d.restA == "" && d.restB == "" {
		sep = ""
	}
	if !t.template {
		// The mirror and the rest are both valid; only the length can fail, or a
		// Docker Hub namespace left with no path after it.
		if t.pathLen+len(sep)+len(d.restA)+len(d.restB) > reference.RepositoryNameTotalLengthMax ||
			t.hostless && sep == "" {
			return "", false
		}
		return t.pre + sep + d.restA + d.restB + d.suffix, true
	}
	img := t.pre + d.registry + t.post + sep + d.restA + d.restB + d.suffix
	if _, ok := scan(img); ok {
		return img, true
	}
	if _, err := reference.ParseNormalizedNamed(img); err != nil {
		return "", false
	}
	return img, true
}
