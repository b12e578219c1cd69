package manifest

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/detourhq/detour/internal/rules"
)

// maxAliasDepth bounds alias and merge chains; YAML lets an anchored node
// contain an alias of itself, so the walk must not trust them to end.
const maxAliasDepth = 64

// maxSteps bounds the work of walking one document. Aliases can make a tiny
// document stand for an exponentially large one (the "billion laughs"); a
// real manifest takes a few steps per node, far below this.
const maxSteps = 1 << 20

// walker finds the image fields of one document.
type walker struct {
	doc    int
	images []*imageField
	// owned holds the image scalars reached from the document root without
	// going through an alias or merge key: they are written where they are
	// used, as image fields.
	owned map[*yaml.Node]bool
	// seen guards against objects that contain themselves through aliases.
	seen map[*yaml.Node]bool
	root *yaml.Node
	// steps counts the work done; past maxSteps the walk stops with err.
	steps int
	err   *Error
}

// spend counts one step of work and reports whether the walk may go on.
func (w *walker) spend() bool {
	if w.err != nil {
		return false
	}
	if w.steps++; w.steps > maxSteps {
		w.err = &Error{Doc: w.doc, Err: ErrAliases,
			Msg: "the document's aliases expand to too much to walk; expand them (e.g. with yq 'explode(.)') first"}
		return false
	}
	return true
}

// imageField is one container's image field.
type imageField struct {
	node       *yaml.Node   // the scalar holding the value, aliases resolved
	kind, name string       // the object holding the container
	path       string       // "spec.containers[0].image"
	aliases    []*yaml.Node // the aliases (and merge values) passed to reach node
}

func newWalker(doc int) *walker {
	return &walker{doc: doc, owned: map[*yaml.Node]bool{}, seen: map[*yaml.Node]bool{}}
}

// ref is a node reached from the root, with the aliases passed on the way.
type ref struct {
	n       *yaml.Node
	aliases []*yaml.Node
}

// resolve follows aliases; it returns nil for a chain that does not end.
func (w *walker) resolve(r ref) ref {
	for i := 0; r.n != nil && r.n.Kind == yaml.AliasNode; i++ {
		if i == maxAliasDepth || !w.spend() {
			return ref{}
		}
		r = ref{r.n.Alias, appendAlias(r.aliases, r.n)}
	}
	return r
}

// appendAlias returns aliases + a without sharing the backing array, so that
// sibling refs never overwrite each other's chains.
func appendAlias(aliases []*yaml.Node, a *yaml.Node) []*yaml.Node {
	out := make([]*yaml.Node, len(aliases), len(aliases)+1)
	copy(out, aliases)
	return append(out, a)
}

// get returns the values of key in the mapping r (resolved), following merge
// keys when the mapping itself has no such key. Duplicate keys all count.
func (w *walker) get(r ref, key string) []ref {
	return w.getDepth(r, key, 0)
}

func (w *walker) getDepth(r ref, key string, depth int) []ref {
	r = w.resolve(r)
	if r.n == nil || r.n.Kind != yaml.MappingNode || depth > maxAliasDepth || !w.spend() {
		return nil
	}
	var out []ref
	var merges []ref
	for i := 0; i+1 < len(r.n.Content); i += 2 {
		k, v := r.n.Content[i], r.n.Content[i+1]
		switch {
		case k.Kind == yaml.ScalarNode && k.Tag == "!!merge":
			merges = append(merges, ref{v, r.aliases})
		case k.Kind == yaml.ScalarNode && k.Value == key:
			out = append(out, ref{v, r.aliases})
		}
	}
	if len(out) > 0 {
		return out
	}
	// `<<: *base` or `<<: [*a, *b]`: the first source with the key wins.
	for _, m := range merges {
		m = w.resolve(m)
		if m.n == nil {
			continue
		}
		var sources []ref
		if m.n.Kind == yaml.SequenceNode {
			for _, s := range m.n.Content {
				sources = append(sources, ref{s, m.aliases})
			}
		} else {
			sources = []ref{m}
		}
		for _, s := range sources {
			s = w.resolve(s)
			if s.n == nil {
				continue
			}
			if found := w.getDepth(s, key, depth+1); len(found) > 0 {
				return found
			}
		}
	}
	return nil
}

// str returns the first value of key when it is a plain string scalar.
func (w *walker) str(r ref, key string) string {
	for _, v := range w.get(r, key) {
		v = w.resolve(v)
		if v.n != nil && v.n.Kind == yaml.ScalarNode && v.n.Tag == "!!str" {
			return v.n.Value
		}
	}
	return ""
}

func (w *walker) document(doc *yaml.Node) {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return
	}
	w.root = doc.Content[0]
	w.object(ref{n: w.root}, "", "", "")
}

// object visits one Kubernetes object (or List) at path; defKind and defAPI
// are the kind and apiVersion its typed List gives items that omit them.
func (w *walker) object(r ref, path, defKind, defAPI string) {
	r = w.resolve(r)
	if r.n == nil || r.n.Kind != yaml.MappingNode || w.seen[r.n] || !w.spend() {
		return
	}
	w.seen[r.n] = true
	defer delete(w.seen, r.n)
	kind, api := w.str(r, "kind"), w.str(r, "apiVersion")
	if kind == "" && api == "" {
		kind, api = defKind, defAPI
	}
	if kind == "List" || strings.HasSuffix(kind, "List") {
		itemKind := strings.TrimSuffix(kind, "List")
		if _, ok := kinds[itemKind]; !ok || !inGroup(api, kinds[itemKind].groups) {
			itemKind = ""
		}
		if kind == "List" && !inGroup(api, []string{""}) {
			return
		}
		for _, items := range w.get(r, "items") {
			items = w.resolve(items)
			if items.n == nil || items.n.Kind != yaml.SequenceNode {
				continue
			}
			for i, it := range items.n.Content {
				w.object(ref{it, items.aliases}, fmt.Sprintf("%sitems[%d].", path, i), itemKind, api)
			}
		}
		return
	}
	k, ok := kinds[kind]
	if !ok || !inGroup(api, k.groups) {
		return
	}
	meta := w.get(r, "metadata")
	name := ""
	if len(meta) > 0 {
		if name = w.str(meta[0], "name"); name == "" {
			name = w.str(meta[0], "generateName")
		}
	}
	specs := []ref{r}
	for _, key := range k.spec {
		var next []ref
		for _, s := range specs {
			next = append(next, w.get(s, key)...)
		}
		specs = next
	}
	specPath := path + strings.Join(k.spec, ".") + "."
	for _, spec := range specs {
		for _, list := range containerLists {
			for _, l := range w.get(spec, list) {
				l = w.resolve(l)
				if l.n == nil || l.n.Kind != yaml.SequenceNode {
					continue
				}
				for i, c := range l.n.Content {
					for _, img := range w.get(ref{c, l.aliases}, "image") {
						v := w.resolve(img)
						if !w.spend() {
							return
						}
						if v.n == nil || v.n.Kind != yaml.ScalarNode || v.n.Tag != "!!str" {
							continue // not a string: Kubernetes will say so
						}
						w.images = append(w.images, &imageField{
							node: v.n, kind: kind, name: name, aliases: v.aliases,
							path: fmt.Sprintf("%s%s[%d].image", specPath, list, i),
						})
						if len(v.aliases) == 0 {
							w.owned[v.n] = true
						}
					}
				}
			}
		}
	}
}

// plan decides every image of the document and checks that each change can
// be made in place: it returns the changes and the byte edits.
func (w *walker) plan(set *rules.Set, src *source) ([]Change, []edit, error) {
	if w.err != nil {
		return nil, nil, w.err
	}
	to := map[*yaml.Node]string{}
	first := map[*yaml.Node]*imageField{}
	var order []*yaml.Node
	for _, f := range w.images {
		if strings.Contains(f.node.Value, "{{") {
			return nil, nil, &Error{Doc: w.doc, Line: f.node.Line, Err: ErrTemplate,
				Msg: fmt.Sprintf("%s %s: image %q is a template expression: render the template first (helm template ... | detour rewrite -f -)",
					objName(f), f.path, f.node.Value)}
		}
		if _, done := first[f.node]; done {
			continue
		}
		first[f.node] = f
		if d := set.Rewrite(f.node.Value); d.Changed() {
			to[f.node] = d.Image
			order = append(order, f.node)
		}
	}
	if len(order) == 0 {
		return nil, nil, nil
	}
	// An image reached through an alias must be written, as an image field,
	// where its anchor is.
	for _, n := range order {
		if !w.owned[n] {
			f := first[n]
			return nil, nil, &Error{Doc: w.doc, Line: f.aliases[len(f.aliases)-1].Line, Err: ErrShared,
				Msg: fmt.Sprintf("%s %s: the image %q comes through an alias or merge key from line %d, which is not an image field; "+
					"rewriting it there would change that value too: write the image out in place", objName(f), f.path, n.Value, n.Line)}
		}
	}
	if err := w.checkAliases(to); err != nil {
		return nil, nil, err
	}
	edits := make([]edit, 0, len(order))
	byNode := map[*yaml.Node]edit{}
	for _, n := range order {
		e, err := src.plan(n, to[n])
		if err != nil {
			f := first[n]
			err.Doc = w.doc
			err.Msg = fmt.Sprintf("%s %s: %s", objName(f), f.path, err.Msg)
			return nil, nil, err
		}
		e.doc = w.doc
		edits = append(edits, e)
		byNode[n] = e
	}
	var changes []Change
	for _, f := range w.images {
		if e, ok := byNode[f.node]; ok {
			changes = append(changes, Change{
				Doc: w.doc, Kind: f.kind, Name: f.name, Path: f.path, Line: e.line,
				From: f.node.Value, To: e.value,
			})
		}
	}
	return changes, edits, nil
}

func objName(f *imageField) string { return f.kind + "/" + nameOr(f.name) }

func nameOr(name string) string {
	if name == "" {
		return "(unnamed)"
	}
	return name
}

// checkAliases refuses a change that a use of an anchor outside the image
// fields would see: every changed image under an alias must have been reached,
// as an image field, through that very alias.
func (w *walker) checkAliases(to map[*yaml.Node]string) error {
	through := map[*yaml.Node]map[*yaml.Node]bool{}
	for _, f := range w.images {
		if _, ok := to[f.node]; !ok {
			continue
		}
		for _, a := range f.aliases {
			if through[a] == nil {
				through[a] = map[*yaml.Node]bool{}
			}
			through[a][f.node] = true
		}
	}
	c := &aliasCheck{w: w, to: to, through: through, memo: map[*yaml.Node][]*yaml.Node{}}
	c.visit(w.root, 0)
	if c.err == nil && w.err != nil {
		return w.err
	}
	return c.err
}

type aliasCheck struct {
	w       *walker
	to      map[*yaml.Node]string
	through map[*yaml.Node]map[*yaml.Node]bool
	memo    map[*yaml.Node][]*yaml.Node
	err     error
}

// visit walks the tree as written, not following aliases.
func (c *aliasCheck) visit(n *yaml.Node, depth int) {
	if c.err != nil || n == nil || depth > 10000 || !c.w.spend() {
		return
	}
	if n.Kind == yaml.AliasNode {
		c.check(n, c.under(n.Alias))
		return
	}
	if n.Kind == yaml.MappingNode {
		// A merge key makes the merged mapping's keys visible here, except
		// those this mapping (or an earlier merge source) sets itself.
		over := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; k.Tag != "!!merge" {
				over[k.Value] = true
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			c.visit(k, depth+1)
			if k.Tag != "!!merge" {
				c.visit(v, depth+1)
				continue
			}
			sources := []*yaml.Node{v}
			if v.Kind == yaml.SequenceNode {
				sources = v.Content
			}
			for _, s := range sources {
				if s.Kind != yaml.AliasNode {
					c.visit(s, depth+1)
					continue
				}
				c.check(s, c.visible(s.Alias, over, 0))
			}
		}
		return
	}
	for _, ch := range n.Content {
		c.visit(ch, depth+1)
	}
}

func (c *aliasCheck) check(alias *yaml.Node, seen []*yaml.Node) {
	for _, n := range seen {
		if c.err == nil && !c.through[alias][n] {
			c.err = &Error{Doc: c.w.doc, Line: alias.Line, Err: ErrShared,
				Msg: fmt.Sprintf("the alias *%s uses the image %q of line %d outside an image field; "+
					"rewriting the image would change it here too: write the image out in place", alias.Value, n.Value, n.Line)}
		}
	}
}

// under lists the changed scalars in the tree under n as written.
func (c *aliasCheck) under(n *yaml.Node) []*yaml.Node {
	if n == nil || n.Kind == yaml.AliasNode {
		return nil
	}
	if out, ok := c.memo[n]; ok {
		return out
	}
	c.memo[n] = nil
	var out []*yaml.Node
	if _, ok := c.to[n]; ok {
		out = append(out, n)
	}
	for _, ch := range n.Content {
		out = append(out, c.under(ch)...)
	}
	c.memo[n] = out
	return out
}

// visible lists the changed scalars that a merge of m brings into a mapping
// whose own (or earlier merged) keys are over. over is updated with m's keys.
func (c *aliasCheck) visible(m *yaml.Node, over map[string]bool, depth int) []*yaml.Node {
	m = c.w.resolve(ref{n: m}).n
	if m == nil || depth > maxAliasDepth || !c.w.spend() {
		return nil
	}
	if m.Kind != yaml.MappingNode {
		return c.under(m)
	}
	var out []*yaml.Node
	var merges []*yaml.Node
	own := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Tag == "!!merge" {
			merges = append(merges, v)
			continue
		}
		own[k.Value] = true
		if !over[k.Value] {
			out = append(out, c.under(v)...)
		}
	}
	inner := map[string]bool{}
	for k := range over {
		inner[k] = true
	}
	for k := range own {
		inner[k] = true
	}
	for _, v := range merges {
		sources := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			sources = v.Content
		}
		for _, s := range sources {
			out = append(out, c.visible(s, inner, depth+1)...)
		}
	}
	for k := range inner {
		over[k] = true
	}
	return out
}
