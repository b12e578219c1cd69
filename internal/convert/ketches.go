package convert

import (
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/detourhq/detour/internal/rules"
)

// ketchesConfig is a ketches/registry-proxy config.yaml as ketches reads it
// (yaml.v3 into a struct: unknown keys ignored, missing keys zero).
type ketchesConfig struct {
	enabled, hasEnabled bool
	enabledLine         int
	proxies             []proxy
	include, exclude    []nsEntry
	hasInclude          bool
	podSelector         map[string]string
	nsSelector          map[string]string
	ignored             []string // unknown keys, "key (line N)"
	// fromDefault: the ConfigMap's config.yaml was empty, so ketches ran on
	// its built-in default, which this holds.
	fromDefault bool
	lines       lineMap // where config.yaml's lines are in the input
}

type proxy struct {
	registry, proxy string
	line            int
}

type nsEntry struct {
	name string
	line int
}

// ketchesDefault is the built-in config of ketches/registry-proxy's current
// source (internal/config/config.go), used when config.yaml is empty.
var ketchesDefault = ketchesConfig{
	enabled: true, hasEnabled: true, hasInclude: true,
	proxies: []proxy{
		{registry: "docker.io", proxy: "docker.m.daocloud.io"},
		{registry: "registry.k8s.io", proxy: "k8s.m.daocloud.io"},
		{registry: "quay.io", proxy: "quay.m.daocloud.io"},
		{registry: "ghcr.io", proxy: "ghcr.m.daocloud.io"},
		{registry: "gcr.io", proxy: "gcr.m.daocloud.io"},
		{registry: "k8s.gcr.io", proxy: "k8s-gcr.m.daocloud.io"},
	},
	include: []nsEntry{{name: "*"}},
	exclude: []nsEntry{{name: "kube-system"}, {name: "kube-public"}, {name: "kube-node-lease"}, {name: "registry-proxy"}},
}

// ketchesConfigKey is the ConfigMap key ketches reads its config from.
const ketchesConfigKey = "config.yaml"

// FromKetches converts a ketches/registry-proxy config (the ConfigMap, a
// manifest stream holding it, or the bare config.yaml) to a detour config.
func FromKetches(data []byte) ([]byte, error) {
	cfg, err := readKetches(data)
	if err != nil {
		return nil, err
	}
	return writeKetches(cfg)
}

// lineMap turns a line of config.yaml into a line of the input: base+line
// when config.yaml is a literal block (|) in the ConfigMap, or the bare
// input (base 0); otherwise lines are config.yaml's own and where says
// where it is.
type lineMap struct {
	base  int
	where string
}

// line maps a config.yaml line, 0 staying 0.
func (m lineMap) line(l int) int {
	if l == 0 || m.where != "" {
		return l
	}
	return m.base + l
}

// ref names a config.yaml line for a comment.
func (m lineMap) ref(l int) string {
	if m.where != "" {
		return fmt.Sprintf("line %d %s", l, m.where)
	}
	return fmt.Sprintf("line %d", m.line(l))
}

// wrap maps the line of an *Error from parsing config.yaml.
func (m lineMap) wrap(err error) error {
	e, ok := err.(*Error)
	if !ok {
		return err
	}
	if m.where == "" {
		e.Line = m.line(e.Line)
		return e
	}
	if e.Line > 0 {
		e.Msg = fmt.Sprintf("line %d %s: %s", e.Line, m.where, e.Msg)
		e.Line = 0
	} else {
		e.Msg = m.where + ": " + e.Msg
	}
	return e
}

func readKetches(data []byte) (*ketchesConfig, error) {
	docs, err := decodeYAML(data)
	if err != nil {
		return nil, hintAlias(data, err)
	}
	var found []*yaml.Node // data."config.yaml" values
	var maps []string      // ConfigMaps without it
	kinds := 0
	for _, doc := range docs {
		root := docRoot(doc)
		if root == nil || root.Kind != yaml.MappingNode {
			continue
		}
		kind := get(root, "kind")
		if kind == nil {
			continue
		}
		kinds++
		if kind.Value != "ConfigMap" {
			continue
		}
		if v := get(get(root, "data"), ketchesConfigKey); v != nil {
			found = append(found, v)
		} else {
			maps = append(maps, fmt.Sprintf("%s (line %d)", q(stringAt(get(root, "metadata"), "name")), root.Line))
		}
	}
	switch {
	case len(found) > 1:
		var lines []string
		for _, v := range found {
			lines = append(lines, fmt.Sprint(v.Line))
		}
		return nil, errorf(0, "found %d ConfigMaps with data.%s (lines %s); give the one ketches reads", len(found), ketchesConfigKey, strings.Join(lines, ", "))
	case len(found) == 1:
		v := found[0]
		if v.Kind != yaml.ScalarNode || (v.Tag != "!!str" && v.Tag != "!!null") {
			return nil, errorf(v.Line, "data.%s must be a string (the config file's text), got %s", ketchesConfigKey, describe(v))
		}
		if v.Value == "" {
			cfg := ketchesDefault
			cfg.fromDefault = true
			return &cfg, nil
		}
		m := lineMap{where: fmt.Sprintf("of data.%s (line %d)", ketchesConfigKey, v.Line)}
		if v.Style&^yaml.TaggedStyle == yaml.LiteralStyle {
			m = lineMap{base: v.Line}
		}
		inner, err := decodeYAML([]byte(v.Value))
		if err != nil {
			return nil, m.wrap(hintAlias([]byte(v.Value), err))
		}
		cfg, err := decodeKetches(inner, m)
		if err != nil {
			return nil, m.wrap(err)
		}
		return cfg, nil
	case len(maps) > 0:
		return nil, errorf(0, "ConfigMap %s has no data.%s: is it ketches' registry-proxy-config?", strings.Join(maps, ", "), ketchesConfigKey)
	case kinds > 0:
		return nil, errorf(0, "no ConfigMap with data.%s in the input (ketches keeps its config in ConfigMap registry-proxy-config)", ketchesConfigKey)
	case len(docs) == 0:
		return nil, errorf(0, "the input is empty: give ketches' ConfigMap or its config.yaml")
	}
	return decodeKetches(docs, lineMap{})
}

// hintAlias explains the one YAML error ketches' own README leads people
// into: "includeNamespaces:\n- *" (an alias without a name).
func hintAlias(data []byte, err error) error {
	e, ok := err.(*Error)
	if !ok || !bareStar.Match(data) {
		return err
	}
	e.Msg += `; a list entry "- *" is an alias without a name, not a string: write - "*" ` +
		`(ketches' README shows it unquoted, and ketches then fails to read its config and turns itself off)`
	return e
}

var bareStar = regexp.MustCompile(`(?m)^\s*-\s+\*\s*(#.*)?$`)

func decodeKetches(docs []*yaml.Node, m lineMap) (*ketchesConfig, error) {
	if len(docs) > 1 {
		return nil, errorf(docs[1].Line, "config.yaml is one YAML document; found another")
	}
	cfg := &ketchesConfig{lines: m}
	if len(docs) == 0 {
		return cfg, nil // only comments: every key missing
	}
	root := docRoot(docs[0])
	if root == nil || (root.Kind == yaml.ScalarNode && root.Tag == "!!null") {
		return cfg, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, errorf(root.Line, "config.yaml must be a mapping (enabled, proxies, ...), got %s", describe(root))
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], resolve(root.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return nil, errorf(k.Line, "a key must be a string")
		}
		if prev, dup := seen[k.Value]; dup {
			return nil, errorf(k.Line, "key %q given twice (also line %d); ketches fails to read such a config", k.Value, prev)
		}
		seen[k.Value] = k.Line
		var err error
		switch k.Value {
		case "enabled":
			cfg.hasEnabled, cfg.enabledLine = true, k.Line
			cfg.enabled, err = ketchesBool(v)
		case "proxies":
			cfg.proxies, err = ketchesProxies(v)
		case "includeNamespaces":
			cfg.include, err = ketchesStrings(k.Value, v)
			cfg.hasInclude = true
		case "excludeNamespaces":
			cfg.exclude, err = ketchesStrings(k.Value, v)
		case "podSelector":
			cfg.podSelector, err = ketchesLabels(k.Value, v)
		case "namespaceSelector":
			cfg.nsSelector, err = ketchesLabels(k.Value, v)
		default:
			cfg.ignored = append(cfg.ignored, fmt.Sprintf("%q (%s)", k.Value, m.ref(k.Line)))
		}
		if err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// ketchesBool reads enabled as yaml.v3 reads it into a Go bool, which also
// takes the YAML 1.1 spellings (yes, on, ...).
func ketchesBool(v *yaml.Node) (bool, error) {
	if v.Kind == yaml.ScalarNode {
		switch {
		case v.Tag == "!!bool":
			return strings.EqualFold(v.Value, "true"), nil
		case v.Tag == "!!null":
			return false, nil
		case v.Tag == "!!str" && v.Style&^yaml.TaggedStyle == 0:
			switch v.Value {
			case "y", "Y", "yes", "Yes", "YES", "on", "On", "ON":
				return true, nil
			case "n", "N", "no", "No", "NO", "off", "Off", "OFF":
				return false, nil
			}
		}
	}
	return false, errorf(v.Line, "enabled: want true or false, got %s", describe(v))
}

func ketchesProxies(v *yaml.Node) ([]proxy, error) {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return nil, nil
	}
	if v.Kind != yaml.MappingNode {
		return nil, errorf(v.Line, "proxies: want a mapping of registry: proxy host, got %s", describe(v))
	}
	var out []proxy
	seen := map[string]int{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], resolve(v.Content[i+1])
		if k.Kind != yaml.ScalarNode || val.Kind != yaml.ScalarNode {
			return nil, errorf(k.Line, "proxies: want registry: proxy host, each a string")
		}
		if prev, dup := seen[k.Value]; dup {
			return nil, errorf(k.Line, "proxies: %q given twice (also line %d); ketches fails to read such a config", k.Value, prev)
		}
		seen[k.Value] = k.Line
		p := proxy{registry: k.Value, line: k.Line}
		if val.Tag != "!!null" {
			p.proxy = val.Value
		}
		out = append(out, p)
	}
	return out, nil
}

func ketchesStrings(key string, v *yaml.Node) ([]nsEntry, error) {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return nil, nil
	}
	if v.Kind != yaml.SequenceNode {
		return nil, errorf(v.Line, "%s: want a list of namespace names, got %s", key, describe(v))
	}
	var out []nsEntry
	for _, e := range v.Content {
		e = resolve(e)
		if e.Kind != yaml.ScalarNode || e.Tag == "!!null" {
			return nil, errorf(e.Line, "%s: want a namespace name, got %s", key, describe(e))
		}
		out = append(out, nsEntry{e.Value, e.Line})
	}
	return out, nil
}

func ketchesLabels(key string, v *yaml.Node) (map[string]string, error) {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return nil, nil
	}
	if v.Kind != yaml.MappingNode {
		return nil, errorf(v.Line, "%s: want a mapping of label: value, got %s", key, describe(v))
	}
	out := map[string]string{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], resolve(v.Content[i+1])
		if k.Kind != yaml.ScalarNode || val.Kind != yaml.ScalarNode {
			return nil, errorf(k.Line, "%s: want label: value, each a string", key)
		}
		out[k.Value] = val.Value
	}
	return out, nil
}

// ketchesRule is one proxy as it becomes a detour rule.
type ketchesRule struct {
	proxy
	to       string
	disabled string // why the rule is written commented out, "" if active
	notes    []string
}

// planProxies decides each proxy: active, or commented out with a reason.
func planProxies(proxies []proxy, m lineMap) ([]ketchesRule, error) {
	var out []ketchesRule
	for _, p := range proxies {
		r := ketchesRule{proxy: p, to: strings.TrimSpace(p.proxy)}
		key := strings.TrimSpace(p.registry)
		host, rest, hasPath := strings.Cut(key, "/")
		switch {
		case r.to == "":
			r.disabled = "ketches proxied nothing for a registry mapped to an empty value."
		case key == "*":
			r.disabled = `ketches had no wildcard: the key "*" never matched an image, and here it would match every registry.`
		case hasPath || rest != "":
			r.disabled = "ketches looked up only the registry host of an image, so a key with a path never matched; " +
				"in detour it would match the images under that path."
		case !rules.IsRegistryHost(host):
			r.disabled = fmt.Sprintf("ketches looked up the registry host of an image, which has a '.' or ':' or is localhost, so %s never matched.", q(key))
		case strings.EqualFold(host, "index.docker.io"):
			r.disabled = "ketches read index.docker.io images as docker.io before looking up the proxy, so this key never matched; " +
				"in detour it would be the docker.io rule."
		}
		if r.disabled == "" {
			for _, scheme := range []string{"https://", "http://"} {
				if len(r.to) > len(scheme) && strings.EqualFold(r.to[:len(scheme)], scheme) {
					broken := path.Join(r.to, "library/nginx:latest")
					r.to = strings.TrimSuffix(r.to[len(scheme):], "/")
					r.notes = append(r.notes, fmt.Sprintf("The proxy was written as a URL; ketches then produced images like %s, "+
						"which no runtime can pull. detour wants the host alone: %s.", q(broken), q(r.to)))
				}
			}
			r.to = strings.TrimSuffix(r.to, "/")
			if err := checkRule(key, r.to); err != nil {
				return nil, m.wrap(errorf(p.line, "proxies: %s: %s: %v", q(p.registry), q(p.proxy), ruleMsg(err)))
			}
			if key != strings.ToLower(key) || strings.HasSuffix(key, ":443") || strings.EqualFold(host, "registry-1.docker.io") {
				r.notes = append(r.notes, fmt.Sprintf("ketches matched only images whose host was spelled %s exactly; "+
					"detour compares hosts case-insensitively, drops :443 and reads registry-1.docker.io as docker.io.", q(key)))
			}
		}
		r.registry = key
		out = append(out, r)
	}
	// Two keys detour reads as the same registry: keep the plainest spelling.
	froms := make([]string, len(out))
	for i, r := range out {
		if r.disabled == "" {
			froms[i] = r.registry
		}
	}
	for i, keep := range sameFrom(froms) {
		out[i].disabled = fmt.Sprintf("detour reads %s as the same registry as %s (%s), which is kept; "+
			"ketches treated them as two.", q(out[i].registry), q(out[keep].registry), m.ref(out[keep].line))
		out[i].notes = nil
	}
	return out, nil
}

// sameFrom finds the froms ("" for none) that detour reads as one: it maps
// the index of each one left out to the index of the one kept, the first
// spelled as detour normalises it (lower case, docker.io), else the first.
func sameFrom(froms []string) map[int]int {
	groups := map[string][]int{}
	var order []string
	for i, f := range froms {
		if f == "" {
			continue
		}
		k := rules.FromKey(f)
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	out := map[int]int{}
	for _, k := range order {
		idx := groups[k]
		keep := idx[0]
		for _, i := range idx {
			if froms[i] == strings.TrimSuffix(k, "/") {
				keep = i
				break
			}
		}
		for _, i := range idx {
			if i != keep {
				out[i] = keep
			}
		}
	}
	return out
}

// ruleMsg is the message of a rules.Compile error, without the field.
func ruleMsg(err error) string {
	if re, ok := err.(*rules.RuleError); ok {
		return re.Err.Error()
	}
	return err.Error()
}

// globMeta are the characters path.Match treats specially.
const globMeta = `*?[\`

func writeKetches(cfg *ketchesConfig) ([]byte, error) {
	plan, err := planProxies(cfg.proxies, cfg.lines)
	if err != nil {
		return nil, err
	}
	o := &out{}
	o.comment("", "detour config converted from a ketches/registry-proxy config (detour config convert --from ketches). "+
		"Comments mark where detour behaves differently from ketches: read them before you switch.")
	if cfg.fromDefault {
		o.blank("")
		o.comment("", "The ConfigMap's config.yaml is empty, so ketches ran on its built-in default. "+
			"What follows is the default of ketches' current source (DaoCloud mirrors); older releases "+
			"used *.ketches.cn hosts (docker.ketches.cn, ...): if yours logged those as its "+
			"\"Current registry proxy config\", change the to: values below.")
	}
	o.blank("")
	o.comment("", "Image names: ketches appended \":latest\" to every image it handled, even those no proxy "+
		"matched (localhost:5000/app became localhost:5000/app:latest), and dropped the tag of an image "+
		"given with both a tag and a digest (nginx:1.25@sha256:...). detour keeps the tag and digest exactly "+
		"as written and leaves alone every image no rule matches: nginx becomes .../library/nginx, the same "+
		"image as ketches' .../library/nginx:latest.")
	o.blank("")
	o.comment("", "Hosts: detour also reads registry-1.docker.io as docker.io, compares hosts case-insensitively "+
		"and ignores a :443 port; ketches left such images unmirrored.")
	if len(cfg.ignored) > 0 {
		o.blank("")
		o.comment("", "ketches ignored the unknown keys "+strings.Join(cfg.ignored, ", ")+"; so does this conversion.")
	}
	if len(cfg.podSelector) > 0 {
		o.blank("")
		o.comment("", fmt.Sprintf("ketches only rewrote Pods labelled %s (podSelector); detour has no Pod selector and "+
			"rewrites every Pod in the namespaces below: label the Pods to leave alone detour.dev/skip: \"true\".", labels(cfg.podSelector)))
	}
	if len(cfg.nsSelector) > 0 {
		o.blank("")
		o.comment("", fmt.Sprintf("ketches only rewrote Pods in namespaces labelled %s (namespaceSelector); detour selects "+
			"namespaces by name: list them under namespaces.include.", labels(cfg.nsSelector)))
	}
	switch {
	case !cfg.hasEnabled:
		o.comment("", "Your config has no enabled key. ketches reads a missing key as false: it turned itself off and "+
			"deleted its webhook configuration, so it rewrote nothing. detour reads a missing key as true; this "+
			"conversion writes true, taking the proxies below as what you meant. Write false to keep ketches' behaviour.")
		o.line("enabled: true")
	case !cfg.enabled:
		o.comment("", "ketches was turned off; so is detour: every Pod is admitted unchanged.")
		o.line("enabled: false")
	default:
		o.line("enabled: true")
	}
	o.comment("", "Only the proxies you listed: without this line detour's built-in daocloud preset would add rules "+
		"for registries you did not list.")
	o.line("presets: []")
	o.comment("", "New in detour: an image written as direct.to/IMAGE is admitted as IMAGE, pulled from its source. "+
		"ketches had no such escape; \"\" turns it off.")
	o.line("escapePrefix: %s", str(rules.DefaultEscapePrefix))
	o.line("namespaces:")
	writeKetchesNamespaces(o, cfg)
	writeKetchesMirrors(o, plan)
	return finish(o)
}

// joinAnd joins "a", "b" and "c" as "a, b and c".
func joinAnd(list []string) string {
	if len(list) < 2 {
		return strings.Join(list, "")
	}
	return strings.Join(list[:len(list)-1], ", ") + " and " + list[len(list)-1]
}

func labels(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// nsGlobs turns ketches namespace names into detour globs: "*" alone means
// every namespace in both; any other name ketches compared exactly, so glob
// characters are escaped. Empty names, which match no namespace, are dropped.
func nsGlobs(list []nsEntry) (globs []string, escaped, dropped bool) {
	globs = []string{}
	for _, e := range list {
		switch {
		case e.name == "*":
			globs = append(globs, "*")
		case e.name == "":
			dropped = true
		case strings.ContainsAny(e.name, globMeta):
			var b strings.Builder
			for _, r := range e.name {
				if strings.ContainsRune(globMeta, r) {
					b.WriteByte('\\')
				}
				b.WriteRune(r)
			}
			globs = append(globs, b.String())
			escaped = true
		default:
			globs = append(globs, e.name)
		}
	}
	return globs, escaped, dropped
}

func writeKetchesNamespaces(o *out, cfg *ketchesConfig) {
	const ind = "  "
	include, incEsc, incDrop := nsGlobs(cfg.include)
	switch {
	case len(cfg.include) == 0:
		o.comment(ind, "ketches had no (or an empty) includeNamespaces, which it reads as every namespace.")
		include = []string{"*"}
	case len(include) == 0:
		o.comment(ind, "ketches' includeNamespaces named no real namespace, so it rewrote in none; neither does this.")
	}
	if incEsc {
		o.comment(ind, `ketches compared these names exactly; detour reads globs, so the glob characters are escaped with \ to keep that meaning (remove the \ to make them patterns).`)
	}
	if incDrop {
		o.comment(ind, "An empty name, which matches no namespace, was left out.")
	}
	o.line("%sinclude: %s", ind, strList(include))
	exclude, excEsc, excDrop := nsGlobs(cfg.exclude)
	if len(exclude) == 0 {
		o.comment(ind, "ketches excluded no namespace, not even kube-system, and neither does this empty list "+
			"(left out, detour's default would exclude kube-system, kube-public and kube-node-lease).")
		o.line("%sexclude: []", ind)
		return
	}
	var missing []string
	for _, ns := range []string{"kube-system", "kube-public", "kube-node-lease"} {
		found := false
		for _, e := range exclude {
			found = found || e == ns
		}
		if !found {
			missing = append(missing, ns)
		}
	}
	text := "ketches excluded exactly these namespaces."
	if len(missing) > 0 {
		text += fmt.Sprintf(" It rewrote images in %s, which are not listed, and so does detour with this list "+
			"(left out, detour's default would exclude them).", joinAnd(missing))
	}
	o.comment(ind, text)
	if excEsc {
		o.comment(ind, `ketches compared these names exactly; detour reads globs, so the glob characters are escaped with \.`)
	}
	if excDrop {
		o.comment(ind, "An empty name, which matches no namespace, was left out.")
	}
	o.line("%sexclude:", ind)
	for _, ns := range exclude {
		if ns == "registry-proxy" {
			o.line("%s  - registry-proxy # ketches' own namespace; detour always skips the namespace it runs in", ind)
			continue
		}
		o.line("%s  - %s", ind, str(ns))
	}
}

func writeKetchesMirrors(o *out, plan []ketchesRule) {
	active := 0
	for _, r := range plan {
		if r.disabled == "" {
			active++
		}
	}
	switch {
	case len(plan) == 0:
		o.comment("", "ketches had no proxies, so it rewrote no image; neither does this.")
	case active == 0:
		o.comment("", "None of ketches' proxies could match an image (see below), so it rewrote no image; neither does this.")
	}
	if active == 0 {
		o.line("mirrors: []")
	} else {
		o.line("mirrors:")
	}
	for _, r := range plan {
		for _, n := range r.notes {
			o.comment("  ", n)
		}
		if r.disabled != "" {
			o.comment("  ", "Left out: "+r.disabled)
		}
		o.rule(r.registry, r.to, r.disabled != "")
	}
}

func docRoot(doc *yaml.Node) *yaml.Node {
	if doc == nil || doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	return resolve(doc.Content[0])
}

// resolve follows an alias (one step suffices for a node tree yaml.v3 built:
// an anchor names a node, never another alias).
func resolve(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// get returns the value of key in mapping m, nil if m is not a mapping or
// has no such key.
func get(m *yaml.Node, key string) *yaml.Node {
	m = resolve(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Kind == yaml.ScalarNode && m.Content[i].Value == key {
			return resolve(m.Content[i+1])
		}
	}
	return nil
}

// stringAt returns the scalar value of key in mapping m, "" if none.
func stringAt(m *yaml.Node, key string) string {
	if v := get(m, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

func describe(v *yaml.Node) string {
	switch v.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%s %s", strings.TrimPrefix(v.Tag, "!!"), q(v.Value))
	}
	return "an alias"
}
