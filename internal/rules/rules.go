package rules

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/distribution/reference"
)

// Wildcard is the From value that matches every registry.
const Wildcard = "*"

// RegistryPlaceholder in a To value is replaced by the normalised source
// registry host, e.g. "m.daocloud.io/{registry}" sends quay.io/a/b to
// m.daocloud.io/quay.io/a/b.
const RegistryPlaceholder = "{registry}"

// DefaultEscapePrefix is the escape prefix of the embedded default config,
// taken from the container-mirror webhook users already know.
const DefaultEscapePrefix = "direct.to/"

// Sentinel errors, wrapped in a *RuleError by Compile.
var (
	// ErrEmptyFrom is returned for a rule without a From.
	ErrEmptyFrom = errors.New("empty")
	// ErrInvalidFrom is returned when From is not "*" nor host[:port][/path].
	ErrInvalidFrom = errors.New(`not "*" nor a registry host[:port] with an optional path`)
	// ErrEmptyTo is returned for a rule with no mirror.
	ErrEmptyTo = errors.New("empty")
	// ErrInvalidTo is returned when a To entry is not host[:port][/path].
	ErrInvalidTo = errors.New("not a valid registry host[:port][/path]")
	// ErrDuplicateFrom is returned when two rules have the same From.
	ErrDuplicateFrom = errors.New("another rule has the same from")
)

// Rule maps images under From to the mirrors in To.
type Rule struct {
	// From is a registry host[:port] with an optional repository path prefix
	// ("docker.io", "gcr.io/google-containers", "localhost:5000"), or "*".
	From string
	// To is the fallback chain of mirror prefixes, host[:port][/path], tried in
	// order; without availability checking the first one is used. An entry may
	// contain "{registry}" in its path.
	To []string
	// Origin says where the rule came from, for --explain and logs
	// ("preset daocloud", "config.yaml:12"). It does not affect matching.
	Origin string
}

// RuleError is a Compile error about one rule.
type RuleError struct {
	Index int    // position of the rule in the slice given to Compile
	Field string // "from" or "to"
	Entry int    // for Field "to", the position in the chain
	Value string // the offending value
	Err   error  // one of the sentinel errors
}

func (e *RuleError) Error() string {
	// e.g. `to "not valid!": not a valid registry host[:port][/path]`
	return fmt.Sprintf("%s %q: %v", e.Field, e.Value, e.Err)
}

func (e *RuleError) Unwrap() error { return e.Err }

// Set is a compiled, immutable rule set. The zero value has no rules and no
// escape prefix. A Set is safe for concurrent use.
type Set struct {
	escape   string
	byHost   map[string][]*compiled // normalised host -> rules, longest path first
	wildcard *compiled
	under    map[string][]string // normalised mirror host -> mirror path prefixes ("" is all)
	rules    []Rule
}

type compiled struct {
	rule Rule
	host string // normalised
	path string
	to   []target
}

// target is one To entry, split around the placeholder so a rewrite is a
// single string concatenation.
type target struct {
	pre, post string // To = pre + "{registry}" + post, or pre alone
	template  bool
	hostless  bool // a Docker Hub namespace with no registry host
	pathLen   int  // length of the repository path of pre
}

// Compile checks rules and builds a Set. escapePrefix "" disables the escape.
// Every problem is reported, each as a *RuleError, joined with errors.Join.
func Compile(rules []Rule, escapePrefix string) (*Set, error) {
	s := &Set{
		escape: escapePrefix,
		byHost: map[string][]*compiled{},
		under:  map[string][]string{},
		rules:  slices.Clone(rules),
	}
	var errs []error
	seen := map[string]int{}
	for i, r := range rules {
		c := &compiled{rule: r}
		key, err := c.compileFrom()
		if err != nil {
			errs = append(errs, &RuleError{Index: i, Field: "from", Value: r.From, Err: err})
		} else if _, dup := seen[key]; dup {
			errs = append(errs, &RuleError{Index: i, Field: "from", Value: r.From, Err: ErrDuplicateFrom})
		} else {
			seen[key] = i
		}
		if len(r.To) == 0 {
			errs = append(errs, &RuleError{Index: i, Field: "to", Value: "", Err: ErrEmptyTo})
		}
		for j, to := range r.To {
			t, host, path, err := compileTo(to)
			if err != nil {
				errs = append(errs, &RuleError{Index: i, Field: "to", Entry: j, Value: to, Err: err})
				continue
			}
			c.to = append(c.to, t)
			s.under[host] = append(s.under[host], path)
		}
		if err == nil {
			if c.host == Wildcard {
				s.wildcard = c
			} else {
				s.byHost[c.host] = append(s.byHost[c.host], c)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, list := range s.byHost {
		slices.SortFunc(list, func(a, b *compiled) int { return len(b.path) - len(a.path) })
	}
	return s, nil
}

// compileFrom validates From and fills host and path; it returns the key that
// identifies duplicates (normalised host and path).
func (c *compiled) compileFrom() (string, error) {
	from := strings.TrimSpace(c.rule.From)
	switch from {
	case "":
		return "", ErrEmptyFrom
	case Wildcard:
		c.host = Wildcard
		return Wildcard, nil
	}
	host, path, _ := strings.Cut(from, "/")
	if !isRegistryHost(host) {
		return "", ErrInvalidFrom
	}
	if path != "" {
		if _, err := reference.ParseNamed("example.com/" + path); err != nil {
			return "", ErrInvalidFrom
		}
	}
	c.host = normaliseHost(host)
	c.path = path
	return c.host + "/" + c.path, nil
}

// compileTo validates one To entry. It returns the prefix under which the
// mirror's images lie, as normalised host and path: for a template, the part
// before the directory holding the placeholder.
func compileTo(to string) (target, string, string, error) {
	to = strings.TrimSuffix(strings.TrimSpace(to), "/")
	if to == "" {
		return target{}, "", "", ErrEmptyTo
	}
	t := target{pre: to}
	static, probe := to, to
	if pre, post, ok := strings.Cut(to, RegistryPlaceholder); ok {
		slash := strings.LastIndexByte(pre, '/')
		if slash < 0 || strings.Contains(post, RegistryPlaceholder) {
			return target{}, "", "", ErrInvalidTo // one placeholder, in the path only
		}
		t = target{pre: pre, post: post, template: true}
		static, probe = pre[:slash], pre+"registry.example"+post
	}
	host, path, _ := strings.Cut(static, "/")
	t.pathLen = len(t.pre) - len(host) - 1 // -1 for a bare host: the "/" then is not in the path
	if !isRegistryHost(host) {
		// A Docker Hub namespace, e.g. "googlecontainersmirror".
		host, path, t.hostless, t.pathLen = "", static, true, len(t.pre)
	}
	// The entry must be a repository name whose registry is the one we think,
	// or images built under it would be read differently by a runtime.
	named, err := reference.ParseNormalizedNamed(probe + "/x")
	if err != nil || !reference.IsNameOnly(named) || normaliseHost(reference.Domain(named)) != normaliseHost(host) {
		return target{}, "", "", ErrInvalidTo
	}
	return t, normaliseHost(host), path, nil
}

// isRegistryHost reports whether h is a host[:port] that the reference grammar
// treats as a registry and not as the first path component of a Docker Hub
// image: it must contain "." or ":", or be "localhost".
func isRegistryHost(h string) bool {
	if h == "" {
		return false
	}
	if h != "localhost" && !strings.ContainsAny(h, ".:") {
		return false
	}
	if scanDomain(h) {
		return true
	}
	// IPv6 and other rare shapes: let the grammar decide.
	named, err := reference.ParseNormalizedNamed(h + "/x")
	return err == nil && reference.Domain(named) == h
}

// normaliseHost lower-cases h, drops the default port and maps the Docker Hub
// aliases to docker.io. It allocates only when h has upper-case letters.
func normaliseHost(h string) string {
	if h == "" {
		return "docker.io"
	}
	if hasUpper(h) {
		h = strings.ToLower(h)
	}
	h = strings.TrimSuffix(h, ":443")
	switch h {
	case "index.docker.io", "registry-1.docker.io":
		return "docker.io"
	}
	return h
}

// Rules returns a copy of the rules the Set was compiled from.
func (s *Set) Rules() []Rule { return slices.Clone(s.rules) }

// EscapePrefix returns the escape prefix, "" when the escape is off.
func (s *Set) EscapePrefix() string { return s.escape }

// FromKey returns the form of a From value under which two rules count as the
// same: host normalised as for matching, path as written.
func FromKey(from string) string {
	from = strings.TrimSuffix(strings.TrimSpace(from), "/")
	if from == Wildcard {
		return from
	}
	host, path, _ := strings.Cut(from, "/")
	return normaliseHost(host) + "/" + path
}

// IsRegistryHost reports whether h is a registry host[:port] as the reference
// grammar reads one (it has a "." or ":", or is "localhost").
func IsRegistryHost(h string) bool { return isRegistryHost(h) }

// NormaliseHost returns registry host[:port] h as rules compare it:
// lower-cased, without the default port ":443", with the Docker Hub aliases
// index.docker.io and registry-1.docker.io read as docker.io.
func NormaliseHost(h string) string { return normaliseHost(strings.TrimSpace(h)) }

// IsLoopback reports whether registry host[:port] h names this machine:
// "localhost" or a loopback IP address (containerd's rule for reaching a
// registry over plain HTTP by default; detour's sync and checks follow it).
func IsLoopback(h string) bool {
	name := h
	if host, _, err := net.SplitHostPort(h); err == nil {
		name = host
	}
	name = strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
	if strings.EqualFold(name, "localhost") {
		return true
	}
	ip := net.ParseIP(name)
	return ip != nil && ip.IsLoopback()
}
