package config

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/detourhq/detour/internal/rules"
	"github.com/detourhq/detour/internal/yamlsrc"
)

// Defaults of the check section, as the spec states them.
const (
	// DefaultCheckTimeout bounds one registry request.
	DefaultCheckTimeout = time.Second
	// DefaultCheckBudget bounds all checks of one admission request; the
	// apiserver's own webhook timeout is 10 s by default, so 3 s leaves room.
	DefaultCheckBudget = 3 * time.Second
	// DefaultCheckTTL is how long a positive answer is cached.
	DefaultCheckTTL = 10 * time.Minute
)

// Config is one parsed configuration. Treat it as read-only once parsed.
type Config struct {
	// Enabled false admits every Pod unchanged.
	Enabled bool
	// Presets names built-in rule sets, applied in order under Mirrors.
	Presets []string
	// EscapePrefix is removed from images that start with it, and such images
	// are otherwise left alone. "" turns the escape off. Must end in "/".
	EscapePrefix string
	// Namespaces selects the namespaces whose Pods are rewritten.
	Namespaces Namespaces
	// Mirrors are the user's own rules.
	Mirrors []Mirror
	// InsecureRegistries are reached over plain HTTP (besides loopback) by
	// sync and the availability checks: host[:port] each.
	InsecureRegistries []string
	// Check configures availability checking of fallback chains.
	Check Check
	// Source names where the config came from ("config.yaml", "<default>"),
	// for messages and rule origins.
	Source string
}

// Namespaces holds the include and exclude globs (Go path.Match syntax).
type Namespaces struct {
	Include []string
	Exclude []string
}

// Allows reports whether a Pod in namespace ns is to be rewritten: ns matches
// an include glob and no exclude glob. The globs were validated by Parse.
func (n Namespaces) Allows(ns string) bool {
	return matchAny(n.Include, ns) && !matchAny(n.Exclude, ns)
}

func matchAny(globs []string, s string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, s); ok {
			return true
		}
	}
	return false
}

// Mirror is one user rule.
type Mirror struct {
	// From is a registry host[:port] with an optional path prefix, or "*".
	From string
	// To is the mirror, or a fallback chain of mirrors tried in order.
	To []string
	// Line is where the rule starts in the file (0 for presets and code).
	Line int
}

// Check configures availability checking.
type Check struct {
	// Enabled true chooses, per image, the first mirror of the chain that has it.
	Enabled bool
	// Timeout bounds one registry request.
	Timeout time.Duration
	// Budget bounds all checks of one admission request.
	Budget time.Duration
	// TTL is how long a positive answer is cached; negative ones ttl/10.
	TTL time.Duration
}

//go:embed default.yaml
var defaultYAML []byte

//go:embed presets/*.yaml
var presetFS embed.FS

// DefaultYAML returns the embedded default config file, comments included.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Default returns the embedded default config.
func Default() *Config {
	c, err := parse(defaultYAML, false)
	if err != nil {
		panic("embedded default config: " + err.Error())
	}
	c.Source = "<default>"
	return c
}

// PresetNames lists the built-in presets, sorted.
func PresetNames() []string {
	entries, _ := presetFS.ReadDir("presets")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	return names
}

// Preset returns the rules of a built-in preset.
func Preset(name string) ([]Mirror, error) {
	data, err := presetFS.ReadFile("presets/" + name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("unknown preset %q (have %s)", name, strings.Join(PresetNames(), ", "))
	}
	c, err := parse(data, true)
	if err != nil {
		return nil, fmt.Errorf("preset %s: %w", name, err)
	}
	return c.Mirrors, nil
}

// LoadFile reads and parses the config file at path; errors name the file.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := ParseBytes(data)
	if err != nil {
		return nil, withFile(err, path)
	}
	c.Source = path
	return c, nil
}

// Parse reads a whole config from r.
func Parse(r io.Reader) (*Config, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return ParseBytes(data)
}

// ParseBytes parses a whole config held in data.
func ParseBytes(data []byte) (*Config, error) {
	c, err := parse(data, false)
	if err != nil {
		return nil, err
	}
	c.Source = "<config>"
	return c, nil
}

// parse decodes, validates and compiles; presetOnly restricts the keys to
// `mirrors` (a preset file).
func parse(data []byte, presetOnly bool) (*Config, error) {
	c := &Config{
		Enabled:      true,
		Presets:      []string{"daocloud"},
		EscapePrefix: rules.DefaultEscapePrefix,
		Namespaces: Namespaces{
			Include: []string{"*"},
			Exclude: []string{"kube-system", "kube-public", "kube-node-lease"},
		},
		Check: Check{Timeout: DefaultCheckTimeout, Budget: DefaultCheckBudget, TTL: DefaultCheckTTL},
	}
	if presetOnly {
		c.Presets = nil
	}
	d := &decoder{broken: map[int]bool{}}
	d.document(data, c, presetOnly)
	// Rule problems are reported even when the file has others, so one run of
	// validate shows them all; rules already reported as broken are left out.
	check := *c
	check.Presets = slices.DeleteFunc(slices.Clone(c.Presets), func(p string) bool { return !slices.Contains(PresetNames(), p) })
	check.Mirrors = slices.DeleteFunc(slices.Clone(c.Mirrors), func(m Mirror) bool { return d.broken[m.Line] })
	{
		if _, err := check.compile(); err != nil {
			var list ErrorList
			if errors.As(err, &list) {
				d.errs = append(d.errs, list...)
			} else {
				d.errs = append(d.errs, &Error{Msg: err.Error()})
			}
		}
	}
	if len(d.errs) > 0 {
		sort.SliceStable(d.errs, func(i, j int) bool { return d.errs[i].Line < d.errs[j].Line })
		return nil, d.errs
	}
	return c, nil
}

// Rules returns the effective rule list: presets in order, then the user's
// mirrors, a later rule replacing an earlier one with the same From.
func (c *Config) Rules() ([]rules.Rule, error) {
	var out []rules.Rule
	index := map[string]int{}
	add := func(r rules.Rule) {
		key := rules.FromKey(r.From)
		if i, ok := index[key]; ok {
			out[i] = r
			return
		}
		index[key] = len(out)
		out = append(out, r)
	}
	for _, name := range c.Presets {
		ms, err := Preset(name)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			add(rules.Rule{From: m.From, To: m.To, Origin: "preset " + name})
		}
	}
	user := map[string]bool{}
	for _, m := range c.Mirrors {
		key := rules.FromKey(m.From)
		if user[key] {
			// Two user rules with the same From: keep both so Compile reports it.
			out = append(out, rules.Rule{From: m.From, To: m.To, Origin: c.origin(m)})
			continue
		}
		user[key] = true
		add(rules.Rule{From: m.From, To: m.To, Origin: c.origin(m)})
	}
	return out, nil
}

func (c *Config) origin(m Mirror) string {
	src := c.Source
	if src == "" {
		src = "<config>"
	}
	return src + ":" + strconv.Itoa(m.Line)
}

// Compile builds the rule set of the config. Errors carry the line of the
// offending user rule.
func (c *Config) Compile() (*rules.Set, error) {
	s, err := c.compile()
	if err != nil {
		return nil, withFile(err, c.Source)
	}
	return s, nil
}

func (c *Config) compile() (*rules.Set, error) {
	list, err := c.Rules()
	if err != nil {
		return nil, ErrorList{&Error{Msg: err.Error()}}
	}
	s, err := rules.Compile(list, c.EscapePrefix)
	if err == nil {
		return s, nil
	}
	lines := map[string]int{}
	for _, m := range c.Mirrors {
		lines[c.origin(m)] = m.Line
	}
	var out ErrorList
	for _, e := range unjoin(err) {
		var re *rules.RuleError
		if !errors.As(e, &re) {
			out = append(out, &Error{Msg: e.Error()})
			continue
		}
		r := list[re.Index]
		line, user := lines[r.Origin]
		where := ""
		if !user {
			where = " (" + r.Origin + ")"
		}
		out = append(out, &Error{Line: line, Msg: re.Error() + where})
	}
	return nil, out
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// Error is one problem in a config, at a line (0 when it has none).
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	file := e.File
	if file == "" {
		file = "<config>"
	}
	if e.Line == 0 {
		return file + ": " + e.Msg
	}
	return file + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
}

// ErrorList is every problem found in one config, sorted by line. Its Error
// has one problem per line.
type ErrorList []*Error

func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

func withFile(err error, file string) error {
	var list ErrorList
	if !errors.As(err, &list) {
		return fmt.Errorf("%s: %w", file, err)
	}
	out := make(ErrorList, len(list))
	for i, e := range list {
		cp := *e
		cp.File = file
		out[i] = &cp
	}
	return out
}

// decoder walks the YAML node tree, filling a Config and collecting errors.
type decoder struct {
	errs   ErrorList
	broken map[int]bool // lines of mirror rules already reported as broken
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.errs = append(d.errs, &Error{Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) document(data []byte, c *Config, presetOnly bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return // empty file: the defaults
		}
		d.syntax(data, err)
		return
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		d.errorf(&extra, "a config is one YAML document; found another")
		return
	} else if err != io.EOF {
		d.syntax(data, err)
		return
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return
	}
	if root.Kind != yaml.MappingNode {
		d.errorf(root, "a config is a mapping of keys (enabled, presets, mirrors, ...), not a %s", kindName(root))
		return
	}
	d.mapping(root, func(key string, k, v *yaml.Node) {
		if presetOnly && key != "mirrors" {
			d.errorf(k, "unknown key %q in a preset (only mirrors)", key)
			return
		}
		switch key {
		case "enabled":
			c.Enabled = d.boolean(key, v)
		case "presets":
			c.Presets = d.strings(key, v)
			seen := map[string]bool{}
			for i, p := range c.Presets {
				if _, err := presetFS.Open("presets/" + p + ".yaml"); err != nil {
					d.errorf(v.Content[i], "unknown preset %q (have %s)", p, strings.Join(PresetNames(), ", "))
				} else if seen[p] {
					d.errorf(v.Content[i], "preset %q listed twice", p)
				}
				seen[p] = true
			}
		case "escapePrefix":
			c.EscapePrefix = d.str(key, v)
			if c.EscapePrefix != "" && !strings.HasSuffix(c.EscapePrefix, "/") {
				d.errorf(v, "escapePrefix %q must end with \"/\" (or be \"\" to turn the escape off)", c.EscapePrefix)
			}
		case "namespaces":
			d.namespaces(v, &c.Namespaces)
		case "mirrors":
			c.Mirrors = d.mirrors(v)
		case "insecureRegistries":
			c.InsecureRegistries = d.strings(key, v)
			for i, h := range c.InsecureRegistries {
				if !rules.IsRegistryHost(h) {
					d.errorf(v.Content[i], "insecureRegistries: %q is not a registry host[:port]", h)
				}
			}
		case "check":
			d.check(v, &c.Check)
		default:
			d.errorf(k, "unknown key %q (known: enabled, presets, escapePrefix, namespaces, mirrors, insecureRegistries, check)", key)
		}
	})
}

func (d *decoder) syntax(data []byte, err error) {
	line, msg, _ := yamlsrc.Locate(data, nil, err)
	d.errs = append(d.errs, &Error{Line: line, Msg: "YAML: " + msg})
}

// mapping calls f for each key of a mapping node, reporting duplicate and
// non-string keys.
func (d *decoder) mapping(n *yaml.Node, f func(key string, k, v *yaml.Node)) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, "a key must be a plain string")
			continue
		}
		if seen[k.Value] {
			d.errorf(k, "key %q given twice", k.Value)
			continue
		}
		seen[k.Value] = true
		f(k.Value, k, v)
	}
}

func (d *decoder) boolean(key string, v *yaml.Node) bool {
	if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" {
		d.errorf(v, "%s: want true or false, got %s", key, describe(v))
		return false
	}
	return v.Value == "true" || v.Value == "True" || v.Value == "TRUE"
}

func (d *decoder) str(key string, v *yaml.Node) string {
	if v.Kind != yaml.ScalarNode || v.Tag != "!!str" {
		d.errorf(v, "%s: want a string, got %s", key, describe(v))
		return ""
	}
	return v.Value
}

// strings accepts a sequence of strings; null is an empty list.
func (d *decoder) strings(key string, v *yaml.Node) []string {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return []string{}
	}
	if v.Kind != yaml.SequenceNode {
		d.errorf(v, "%s: want a list of strings, got %s", key, describe(v))
		return nil
	}
	out := []string{}
	for _, e := range v.Content {
		out = append(out, d.str(key+" entry", e))
	}
	return out
}

func (d *decoder) namespaces(v *yaml.Node, ns *Namespaces) {
	if v.Kind != yaml.MappingNode {
		d.errorf(v, "namespaces: want a mapping with include and exclude, got %s", describe(v))
		return
	}
	d.mapping(v, func(key string, k, v *yaml.Node) {
		var dst *[]string
		switch key {
		case "include":
			dst = &ns.Include
		case "exclude":
			dst = &ns.Exclude
		default:
			d.errorf(k, "unknown key %q in namespaces (known: include, exclude)", key)
			return
		}
		*dst = d.strings("namespaces."+key, v)
		for i, g := range *dst {
			if _, err := path.Match(g, ""); err != nil || g == "" {
				d.errorf(v.Content[i], "namespaces.%s: %q is not a valid glob (Go path.Match syntax)", key, g)
			}
		}
	})
}

func (d *decoder) mirrors(v *yaml.Node) []Mirror {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		d.errorf(v, "mirrors: want a list of rules (- from: ... to: ...), got %s", describe(v))
		return nil
	}
	var out []Mirror
	for _, item := range v.Content {
		if item.Kind != yaml.MappingNode {
			d.errorf(item, "mirrors: want a rule with from and to, got %s", describe(item))
			continue
		}
		m := Mirror{Line: item.Line}
		var haveFrom, haveTo bool
		before := len(d.errs)
		d.mapping(item, func(key string, k, v *yaml.Node) {
			switch key {
			case "from":
				haveFrom = true
				m.From = d.str("from", v)
			case "to":
				haveTo = true
				switch v.Kind {
				case yaml.SequenceNode:
					m.To = d.strings("to", v)
					if len(m.To) == 0 {
						d.errorf(v, "to: the fallback chain is empty")
					}
				default:
					if s := d.str("to", v); s != "" {
						m.To = []string{s}
					} else if v.Tag == "!!str" {
						d.errorf(v, "to: empty")
					}
				}
			default:
				d.errorf(k, "unknown key %q in a mirror rule (known: from, to)", key)
			}
		})
		if !haveFrom {
			d.errorf(item, "mirror rule without from")
		}
		if !haveTo {
			d.errorf(item, "mirror rule without to")
		}
		d.broken[m.Line] = len(d.errs) > before
		out = append(out, m)
	}
	return out
}

func (d *decoder) check(v *yaml.Node, c *Check) {
	if v.Kind != yaml.MappingNode {
		d.errorf(v, "check: want a mapping (enabled, timeout, budget, ttl), got %s", describe(v))
		return
	}
	d.mapping(v, func(key string, k, v *yaml.Node) {
		switch key {
		case "enabled":
			c.Enabled = d.boolean("check.enabled", v)
		case "timeout":
			c.Timeout = d.duration("check.timeout", v)
		case "budget":
			c.Budget = d.duration("check.budget", v)
		case "ttl":
			c.TTL = d.duration("check.ttl", v)
		default:
			d.errorf(k, "unknown key %q in check (known: enabled, timeout, budget, ttl)", key)
		}
	})
}

func (d *decoder) duration(key string, v *yaml.Node) time.Duration {
	if v.Kind != yaml.ScalarNode {
		d.errorf(v, "%s: want a duration such as 1s or 500ms, got %s", key, describe(v))
		return 0
	}
	dur, err := time.ParseDuration(v.Value)
	if err != nil || dur <= 0 {
		d.errorf(v, "%s: %q is not a positive duration such as 1s or 500ms", key, v.Value)
		return 0
	}
	return dur
}

func describe(v *yaml.Node) string {
	if v.Kind == yaml.ScalarNode {
		return fmt.Sprintf("%s %q", strings.TrimPrefix(v.Tag, "!!"), v.Value)
	}
	return kindName(v)
}

func kindName(v *yaml.Node) string {
	switch v.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	return "a " + strings.TrimPrefix(v.Tag, "!!")
}
