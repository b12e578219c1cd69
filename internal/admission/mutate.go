package admission

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/detourhq/detour/internal/jsonstr"
	"github.com/detourhq/detour/internal/rules"
)

// Patch paths of detour's annotations: "/" in a key is "~1" in a JSON
// Pointer (RFC 6901).
const (
	originalImagesPath = "/metadata/annotations/detour.dev~1original-images"
	mirrorChoicePath   = "/metadata/annotations/detour.dev~1mirror-choice"
)

// maxWarningImage is how much of an image string a warning quotes; the
// apiserver may truncate warnings longer than 120 characters.
const maxWarningImage = 48

// candidate is one image detour means to change.
type candidate struct {
	list, index int
	name        string
	d           rules.Decision
	to          string // the image to admit; d.Image unless checking chose otherwise
	choice      string
}

func (c *candidate) field() string { return listNames[c.list] + "/" + c.name }

// mutate decides the images of a Pod that review is to consider and builds
// the response. It never fails: what it cannot do becomes a warning.
func mutate(ctx context.Context, st *state, p *Policy, res *Result) Response {
	req := &st.req
	obj := req.object
	var warnings []string
	var recorded []entry // the original-images annotation as found
	if obj.hasOriginalImages {
		var err error
		if recorded, err = parseEntries(obj.originalImages); err != nil {
			recorded = nil
			warnings = append(warnings, "detour: annotation "+OriginalImagesAnnotation+" is not a JSON object of strings; it is replaced")
		}
	}
	first := initContainers
	if req.subResource == "ephemeralcontainers" {
		// Only ephemeral containers can change through this subresource.
		first = ephemeralContainers
	}
	var old *pod
	if req.operation == "UPDATE" {
		old = req.oldObject
	}

	n := 0
	for l := first; l < numLists; l++ {
		n += len(obj.lists[l])
	}
	cands := slices.Grow(st.cands[:0], n)
	for l := first; l < numLists; l++ {
		for i, c := range obj.lists[l] {
			if c.image == "" || old != nil && old.hasImage(l, c.name, c.image) {
				continue
			}
			if orig, ok := lookup(recorded, l, c.name); ok && isDecisionOf(p.Rules, orig, c.image) {
				// Detour wrote this image (a reinvocation, or a Pod copied
				// from one it admitted): rewriting it again could undo an
				// escape.
				continue
			}
			d := p.Rules.Rewrite(c.image)
			switch d.Reason {
			case rules.Rewritten, rules.Escaped:
				cands = append(cands, candidate{list: l, index: i, name: c.name, d: d, to: d.Image})
			case rules.Invalid:
				warnings = append(warnings, "detour: "+listNames[l]+"/"+c.name+": "+quoteImage(c.image)+" is not a valid image reference; left as written")
			case rules.Unrepresentable:
				warnings = append(warnings, "detour: "+listNames[l]+"/"+c.name+": the mirror name for "+quoteImage(c.image)+" would be invalid; left as written")
			}
		}
	}

	if p.Checker != nil && p.Check.Enabled {
		var w []string
		cands, w = checkCandidates(ctx, st, p, cands)
		warnings = append(warnings, w...)
	}
	st.cands = cands[:0]
	if len(cands) == 0 {
		res.Outcome, res.Warnings = Unchanged, warnings
		return Allowed(req.uid, warnings...)
	}

	res.Outcome, res.Warnings = Patched, warnings
	res.Changes = make([]Change, len(cands))
	for i := range cands {
		c := &cands[i]
		rule := ""
		if c.d.Rule != nil {
			rule = c.d.Rule.From
		}
		res.Changes[i] = Change{Field: c.field(), From: c.d.Input, To: c.to, Reason: c.d.Reason, Rule: rule, Choice: c.choice}
	}
	return PatchResponse(req.uid, buildPatch(st, obj, cands, res.Changes, recorded), warnings...)
}

// hasImage reports whether the Pod has a container called name in list l
// with this image.
func (p *pod) hasImage(l int, name, image string) bool {
	for _, c := range p.lists[l] {
		if c.name == name {
			return c.image == image
		}
	}
	return false
}

// isDecisionOf reports whether image is what detour makes, or could have
// made with availability checking, of orig.
func isDecisionOf(set *rules.Set, orig, image string) bool {
	d := set.Rewrite(orig)
	if !d.Changed() {
		return false
	}
	return d.Image == image || slices.Contains(d.Chain(), image)
}

func quoteImage(s string) string {
	if len(s) > maxWarningImage {
		s = s[:maxWarningImage] + "…"
	}
	return strconv.Quote(s)
}

// entry is one member of detour's JSON-object annotations.
type entry struct{ key, value string }

func parseEntries(s string) ([]entry, error) {
	var out []entry
	err := decodeStringMap(s, func(k, v string) {
		for i := range out {
			if out[i].key == k {
				out[i].value = v // the last of a repeated key wins
				return
			}
		}
		out = append(out, entry{k, v})
	})
	return out, err
}

// lookup finds the entry of container name in list l.
func lookup(es []entry, l int, name string) (string, bool) {
	prefix := listNames[l]
	for _, e := range es {
		if len(e.key) == len(prefix)+1+len(name) && strings.HasPrefix(e.key, prefix) && e.key[len(prefix)] == '/' && strings.HasSuffix(e.key, name) {
			return e.value, true
		}
	}
	return "", false
}

// merge sets key to value in es, keeping es's order for existing keys.
func merge(es []entry, key, value string) []entry {
	for i := range es {
		if es[i].key == key {
			es[i].value = value
			return es
		}
	}
	return append(es, entry{key, value})
}

// appendEntries appends es, sorted by key, as a JSON object.
func appendEntries(dst []byte, es []entry) []byte {
	if dst == nil {
		n := 2
		for _, e := range es {
			n += len(e.key) + len(e.value) + 6
		}
		dst = make([]byte, 0, n)
	}
	slices.SortFunc(es, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	dst = append(dst, '{')
	for i, e := range es {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonstr.Append(dst, e.key)
		dst = append(dst, ':')
		dst = jsonstr.Append(dst, e.value)
	}
	return append(dst, '}')
}

// buildPatch makes the JSON patch: one replace per changed image, then the
// annotations. Whole containers are never re-serialised, so fields this
// version of detour does not know survive.
func buildPatch(st *state, obj *pod, cands []candidate, changes []Change, recorded []entry) []byte {
	// st.buf holds the patch; annotation values are built after it and
	// copied into strings before the patch grows over them.
	patch := append(st.buf[:0], '[')
	for i := range cands {
		c := &cands[i]
		if i > 0 {
			patch = append(patch, ',')
		}
		patch = append(patch, `{"op":"replace","path":"/spec/`...)
		patch = append(patch, listNames[c.list]...)
		patch = append(patch, '/')
		patch = strconv.AppendInt(patch, int64(c.index), 10)
		patch = append(patch, `/image","value":`...)
		patch = jsonstr.Append(patch, c.to)
		patch = append(patch, '}')
	}

	originals := append(st.entries[:0], recorded...)
	for _, ch := range changes {
		originals = merge(originals, ch.Field, ch.From)
	}
	st.entries = originals
	origValue := string(appendEntries(patch[len(patch):], originals))

	choices := st.choices[:0]
	hasChoice := false
	for _, ch := range changes {
		hasChoice = hasChoice || ch.Choice != ""
	}
	if hasChoice {
		if obj.hasMirrorChoice {
			if found, err := parseEntries(obj.mirrorChoice); err == nil { // an unreadable one is replaced
				choices = append(choices, found...)
			}
		}
		for _, ch := range changes {
			if ch.Choice != "" {
				choices = merge(choices, ch.Field, ch.Choice)
			}
		}
		st.choices = choices
	}
	choiceValue := ""
	if hasChoice {
		choiceValue = string(appendEntries(patch[len(patch):], choices))
	}

	switch {
	case obj.hasAnnotations:
		patch = appendAdd(patch, originalImagesPath, origValue)
		if hasChoice {
			patch = appendAdd(patch, mirrorChoicePath, choiceValue)
		}
	default:
		// "add" to a member of a missing object fails (RFC 6902 §4.1): add the
		// whole map, or the whole metadata.
		path, prefix, suffix := "/metadata/annotations", "", ""
		if !obj.hasMetadata {
			path, prefix, suffix = "/metadata", `{"annotations":`, "}"
		}
		patch = append(patch, `,{"op":"add","path":"`...)
		patch = append(patch, path...)
		patch = append(patch, `","value":`...)
		patch = append(patch, prefix...)
		patch = append(patch, '{')
		patch = jsonstr.Append(patch, OriginalImagesAnnotation)
		patch = append(patch, ':')
		patch = jsonstr.Append(patch, origValue)
		if hasChoice {
			patch = append(patch, ',')
			patch = jsonstr.Append(patch, MirrorChoiceAnnotation)
			patch = append(patch, ':')
			patch = jsonstr.Append(patch, choiceValue)
		}
		patch = append(patch, '}')
		patch = append(patch, suffix...)
		patch = append(patch, '}')
	}
	return append(patch, ']')
}

func appendAdd(patch []byte, path, value string) []byte {
	patch = append(patch, `,{"op":"add","path":"`...)
	patch = append(patch, path...)
	patch = append(patch, `","value":`...)
	patch = jsonstr.Append(patch, value)
	return append(patch, '}')
}
