package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/detourhq/detour/internal/yamlsrc"

	"github.com/detourhq/detour/internal/rules"
)

// Sentinel errors, wrapped in an *Error.
var (
	// ErrSyntax: a document is not valid YAML.
	ErrSyntax = errors.New("not valid YAML")
	// ErrTemplate: the input is a template (Helm's {{ }}), not rendered YAML.
	ErrTemplate = errors.New("a template, not YAML")
	// ErrScalarStyle: an image to change is written in a form that cannot be
	// edited in place (a block scalar, a value over several lines).
	ErrScalarStyle = errors.New("image cannot be edited in place")
	// ErrShared: an image to change is shared, through a YAML anchor, with a
	// value that is not an image field.
	ErrShared = errors.New("image shared through an anchor")
	// ErrAliases: a document's aliases expand to more than can be walked.
	ErrAliases = errors.New("aliases expand too much")
	// ErrEncoding: the input is not UTF-8.
	ErrEncoding = errors.New("not UTF-8")
	// ErrVerify: the rewritten output did not parse back to the input with the
	// new images; nothing is returned rather than a damaged file.
	ErrVerify = errors.New("the rewritten output did not check out")
)

// Error is a problem with the input, at a document and line when known.
type Error struct {
	// Doc is the 1-based document number in the stream, 0 when unknown.
	Doc int
	// Line is the 1-based line in the whole input, 0 when unknown.
	Line int
	// Err is one of the sentinel errors.
	Err error
	// Msg says what is wrong, for people.
	Msg string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Doc > 0 {
		fmt.Fprintf(&b, "document %d", e.Doc)
	}
	if e.Line > 0 {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "line %d", e.Line)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Change is one image value that Rewrite changed.
type Change struct {
	// Doc is the 1-based number of the YAML document in the stream.
	Doc int
	// Kind and Name identify the object holding the container: its kind and
	// metadata.name (metadata.generateName when it has no name). For a List
	// item they are the item's own.
	Kind, Name string
	// Path locates the image field in the document, e.g.
	// "spec.template.spec.containers[0].image" or
	// "items[2].spec.initContainers[0].image".
	Path string
	// Line is the 1-based line of the edited value in the input. For an image
	// given as an alias it is the line of the anchored value that was edited.
	Line int
	// From is the image as written; To is what it became.
	From, To string
}

// String formats c as one line for --explain:
// "doc 1 Deployment/web spec.template.spec.containers[0].image: nginx -> m.example/library/nginx".
func (c Change) String() string {
	return fmt.Sprintf("doc %d %s/%s %s: %s -> %s", c.Doc, c.Kind, nameOr(c.Name), c.Path, c.From, c.To)
}

// Rewrite rewrites every container image in the Kubernetes YAML stream data
// with set and returns the new stream and what changed, in input order. With
// nothing to change, out is data itself. On error out and changes are nil.
func Rewrite(data []byte, set *rules.Set) (out []byte, changes []Change, err error) {
	if isUTF16(data) {
		return nil, nil, &Error{Err: ErrEncoding, Msg: "the input is UTF-16; convert it to UTF-8"}
	}
	docs, err := decode(data)
	if err != nil {
		return nil, nil, err
	}
	src := newSource(data)
	var edits []edit
	newValue := map[*yaml.Node]edit{}
	for i, doc := range docs {
		w := newWalker(i + 1)
		w.document(doc)
		chs, eds, err := w.plan(set, src)
		if err != nil {
			return nil, nil, err
		}
		changes = append(changes, chs...)
		for _, e := range eds {
			edits = append(edits, e)
			newValue[e.node] = e
		}
	}
	if len(edits) == 0 {
		return data, nil, nil
	}
	sort.Slice(edits, func(i, j int) bool { return edits[i].start < edits[j].start })
	var buf bytes.Buffer
	buf.Grow(len(data) + 64*len(edits))
	last := 0
	for _, e := range edits {
		if e.start < last {
			// Two values at one place: cannot happen for distinct nodes.
			return nil, nil, &Error{Doc: e.doc, Line: e.line, Err: ErrVerify, Msg: "two image values overlap in the input"}
		}
		buf.Write(data[last:e.start])
		buf.WriteString(e.text)
		last = e.end
	}
	buf.Write(data[last:])
	out = buf.Bytes()
	if err := verify(docs, out, newValue); err != nil {
		return nil, nil, err
	}
	sort.SliceStable(changes, func(i, j int) bool {
		a, b := changes[i], changes[j]
		if a.Doc != b.Doc {
			return a.Doc < b.Doc
		}
		return a.Line < b.Line
	})
	return out, changes, nil
}

// decode parses every document of the stream.
func decode(data []byte) ([]*yaml.Node, error) {
	docs, err := yamlsrc.DecodeAll(data)
	if err != nil {
		return nil, syntaxError(data, len(docs)+1, err)
	}
	return docs, nil
}

func syntaxError(data []byte, doc int, err error) error {
	e := &Error{Doc: doc, Err: ErrSyntax}
	line, msg, ok := yamlsrc.Locate(data, newSource(data).lineStart, err)
	if ok {
		e.Line = line
	} else if line := badCharLine(data); line > 0 {
		// Encoding problems are found by the reader, which runs ahead of
		// the parser: the document number would be a guess.
		e.Doc, e.Line = 0, line
	}
	e.Msg = "not valid YAML: " + msg
	if bytes.Contains(data, []byte("{{")) {
		e.Err = ErrTemplate
		e.Msg += "; this looks like a Helm template ({{ }}), which is not YAML until rendered: " +
			"run `helm template` and pipe its output to `detour rewrite -f -`"
	}
	return e
}

// isUTF16 reports a UTF-16 byte order mark, which the YAML library would
// decode, so that byte offsets no longer match what it reports.
func isUTF16(data []byte) bool {
	return bytes.HasPrefix(data, []byte{0xFF, 0xFE}) || bytes.HasPrefix(data, []byte{0xFE, 0xFF})
}

// edit replaces data[start:end] (the value as written) with text.
type edit struct {
	node       *yaml.Node
	start, end int
	text       string
	value      string // the new value
	style      yaml.Style
	doc, line  int
}

// kinds maps each kind with a pod template to the API groups it lives in
// and the path from the object to its pod spec.
var kinds = map[string]struct {
	groups []string // "" is the core group
	spec   []string
}{
	"Pod":                   {[]string{""}, []string{"spec"}},
	"PodTemplate":           {[]string{""}, []string{"template", "spec"}},
	"ReplicationController": {[]string{""}, []string{"spec", "template", "spec"}},
	"Deployment":            {[]string{"apps", "extensions"}, []string{"spec", "template", "spec"}},
	"StatefulSet":           {[]string{"apps"}, []string{"spec", "template", "spec"}},
	"DaemonSet":             {[]string{"apps", "extensions"}, []string{"spec", "template", "spec"}},
	"ReplicaSet":            {[]string{"apps", "extensions"}, []string{"spec", "template", "spec"}},
	"Job":                   {[]string{"batch"}, []string{"spec", "template", "spec"}},
	"CronJob":               {[]string{"batch"}, []string{"spec", "jobTemplate", "spec", "template", "spec"}},
}

// containerLists are the pod spec fields that hold containers with an image.
var containerLists = []string{"initContainers", "containers", "ephemeralContainers"}

// inGroup reports whether apiVersion ("apps/v1", "v1") names one of groups;
// an absent apiVersion is accepted.
func inGroup(apiVersion string, groups []string) bool {
	if apiVersion == "" {
		return true
	}
	group, _, ok := strings.Cut(apiVersion, "/")
	if !ok {
		group = "" // "v1": the core group
	}
	for _, g := range groups {
		if g == group {
			return true
		}
	}
	return false
}
