package hosts

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/distribution/reference"

	"github.com/detourhq/detour/internal/rules"
)

// Format is a node runtime whose mirror configuration Render writes.
type Format string

// The formats.
const (
	// Containerd is a config_path directory of hosts.toml files.
	Containerd Format = "containerd"
	// Docker is dockerd's daemon.json registry-mirrors.
	Docker Format = "docker"
	// CRIO is containers-registries.conf(5) version 2, as CRI-O, podman and
	// skopeo read it.
	CRIO Format = "crio"
)

// Formats lists the formats in the order the command line shows them.
func Formats() []Format { return []Format{Containerd, Docker, CRIO} }

// ParseFormat returns the Format named s.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats() {
		if string(f) == s {
			return f, nil
		}
	}
	return "", fmt.Errorf("unknown format %q (want containerd, docker or crio)", s)
}

// Options carries what Render needs besides the rules.
type Options struct {
	// Source names the config the rules came from, for the header comment
	// ("/etc/detour/config.yaml", "<default>").
	Source string
	// Insecure lists registry host[:port]s reached over plain HTTP, the
	// config's insecureRegistries. Loopback hosts always are.
	Insecure []string
	// Dir is where the files will be installed, for the notes; "" means the
	// format's usual place (/etc/containerd/certs.d for containerd).
	Dir string
}

// Result is what Render produces.
type Result struct {
	// Files maps a relative, slash-separated path to its content.
	Files map[string][]byte
	// Notes are lines to tell the user: where the files go, what else to
	// change, how the runtime will use them.
	Notes []string
	// Unexpressible lists rules, or mirrors of a rule's chain, that the format
	// cannot carry, sorted by the rule's from.
	Unexpressible []Unexpressible
}

// Unexpressible is a rule (or part of its chain) a format cannot express.
type Unexpressible struct {
	// Rule is the rule as compiled.
	Rule rules.Rule
	// Reason says what the format cannot say and what happens instead.
	Reason string
}

// ErrNilSet is returned by Render when given no rule set.
var ErrNilSet = errors.New("no rule set")

// Render makes the node configuration of set in format. It is pure: the same
// set, format and options give byte-identical files.
func Render(set *rules.Set, format Format, opts Options) (Result, error) {
	if set == nil {
		return Result{}, ErrNilSet
	}
	p := newPlan(set, opts)
	var res Result
	switch format {
	case Containerd:
		res = p.containerd()
	case Docker:
		res = p.docker()
	case CRIO:
		res = p.crio()
	default:
		return Result{}, fmt.Errorf("rendering node config: unknown format %q (want containerd, docker or crio)", format)
	}
	if res.Files == nil {
		res.Files = map[string][]byte{}
	}
	slices.SortStableFunc(res.Unexpressible, func(a, b Unexpressible) int {
		return strings.Compare(rules.FromKey(a.Rule.From), rules.FromKey(b.Rule.From))
	})
	return res, nil
}

// plan is the rule set regrouped the way node configuration sees it: per
// source registry.
type plan struct {
	opts     Options
	insecure map[string]bool
	whole    map[string]rules.Rule // source host -> its whole-registry rule
	hosts    []string              // keys of whole, sorted
	paths    []pathRule            // rules whose from has a path, sorted by from
	wildcard *rules.Rule
}

// pathRule is a rule whose from names a path inside a registry.
type pathRule struct {
	host, path string
	rule       rules.Rule
}

func newPlan(set *rules.Set, opts Options) *plan {
	p := &plan{opts: opts, insecure: map[string]bool{}, whole: map[string]rules.Rule{}}
	for _, h := range opts.Insecure {
		p.insecure[rules.NormaliseHost(h)] = true
	}
	for _, r := range set.Rules() {
		key := rules.FromKey(r.From)
		if key == rules.Wildcard {
			p.wildcard = &r
			continue
		}
		host, path, _ := strings.Cut(key, "/")
		if path == "" {
			p.whole[host] = r
			p.hosts = append(p.hosts, host)
		} else {
			p.paths = append(p.paths, pathRule{host: host, path: path, rule: r})
		}
	}
	slices.Sort(p.hosts)
	slices.SortFunc(p.paths, func(a, b pathRule) int {
		return strings.Compare(a.host+"/"+a.path, b.host+"/"+b.path)
	})
	return p
}

// target is one mirror of a chain, "{registry}" expanded.
type target struct {
	host  string // host[:port] lower-case; "docker.io" for Docker Hub and its aliases
	path  string // repository path prefix; "" for the whole registry
	plain bool   // reached over plain HTTP
}

// name is the mirror as a registry/path prefix, the way rules write it.
func (t target) name() string {
	if t.path == "" {
		return t.host
	}
	return t.host + "/" + t.path
}

// Why a mirror entry cannot be used at all, whatever the format.
var (
	errTemplate = errors.New(`the "*" rule's mirror names the source registry ("{registry}")`)
	errInvalid  = errors.New("not a valid registry/path once {registry} is expanded")
)

// target parses one To entry of a rule for the source registry host (""
// for the "*" rule).
func (p *plan) target(to, host string) (target, error) {
	to = strings.TrimSuffix(strings.TrimSpace(to), "/")
	if strings.Contains(to, rules.RegistryPlaceholder) {
		if host == "" {
			return target{}, errTemplate
		}
		to = strings.ReplaceAll(to, rules.RegistryPlaceholder, host)
	}
	named, err := reference.ParseNormalizedNamed(to + "/x")
	if err != nil || !reference.IsNameOnly(named) {
		return target{}, errInvalid
	}
	h, path, _ := strings.Cut(to, "/")
	if !rules.IsRegistryHost(h) {
		h, path = "docker.io", to // a Docker Hub namespace
	}
	h = rules.NormaliseHost(h)
	return target{host: h, path: path, plain: p.plain(h)}, nil
}

// badMirror is a To entry that cannot be used.
type badMirror struct {
	to  string
	err error
}

// chain parses every To entry of r for source host ("" for "*"): the
// usable mirrors in order, and the others.
func (p *plan) chain(r rules.Rule, host string) ([]target, []badMirror) {
	var good []target
	var bad []badMirror
	for _, to := range r.To {
		t, err := p.target(to, host)
		if err != nil {
			bad = append(bad, badMirror{to, err})
			continue
		}
		good = append(good, t)
	}
	return good, bad
}

// badReasons turns the unusable mirrors of r into Unexpressible entries;
// why(err) says, for the format, what the mirror's problem is.
func badReasons(r rules.Rule, good []target, bad []badMirror, why func(error) string) []Unexpressible {
	var out []Unexpressible
	for _, b := range bad {
		then := "left out of the chain"
		if len(good) == 0 {
			then = "the rule is not expressed"
		}
		out = append(out, Unexpressible{Rule: r, Reason: fmt.Sprintf("mirror %s: %s; %s", b.to, why(b.err), then)})
	}
	return out
}

// plain reports whether registry host h is reached over plain HTTP.
func (p *plan) plain(h string) bool {
	return p.insecure[h] || rules.IsLoopback(h)
}

// isIPv6 reports whether host[:port] h is a bracketed IPv6 address.
func isIPv6(h string) bool { return strings.HasPrefix(h, "[") }

// sameMapping reports whether the path rule pr sends every image to the same
// place as the whole-registry chain base would: each of its mirrors is the
// base mirror at the same position plus pr's path.
func sameMapping(pr []target, path string, base []target) bool {
	if len(pr) == 0 || len(pr) != len(base) {
		return false
	}
	for i := range pr {
		want := base[i]
		if want.path == "" {
			want.path = path
		} else {
			want.path += "/" + path
		}
		if pr[i] != want {
			return false
		}
	}
	return true
}

// header is the comment that opens every generated file that can hold one.
func (p *plan) header(format Format) string {
	src := p.opts.Source
	if src == "" {
		src = "<config>"
	}
	return "# Generated by detour from " + comment(src) + "; do not edit by hand.\n" +
		"# Change the config and run `detour hosts " + string(format) + "` again.\n"
}

// describe is a rule as one line: `docker.io -> a, b (preset daocloud)`.
func describe(r rules.Rule) string {
	s := r.From + " -> " + strings.Join(r.To, ", ")
	if r.Origin != "" {
		s += " (" + r.Origin + ")"
	}
	return s
}

// tomlString quotes s as a TOML basic string. The values written are
// registry names and URLs, but quoting stays correct for anything.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// comment makes s safe to place after "# " on one line.
func comment(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
