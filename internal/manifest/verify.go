package manifest

import (
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"
)

// verify parses out and compares it, node by node, with the input's
// documents: everything must be as it was except the edited values.
func verify(docs []*yaml.Node, out []byte, edited map[*yaml.Node]edit) error {
	got, err := decode(out)
	if err != nil {
		var e *Error
		errors.As(err, &e)
		return &Error{Doc: e.Doc, Line: e.Line, Err: ErrVerify,
			Msg: "the rewritten output is not valid YAML (" + e.Msg + "); nothing was rewritten"}
	}
	if len(got) != len(docs) {
		return &Error{Err: ErrVerify, Msg: fmt.Sprintf("the rewritten output has %d documents, the input %d; nothing was rewritten", len(got), len(docs))}
	}
	for i := range docs {
		if n := diff(docs[i], got[i], edited, 0); n != nil {
			return &Error{Doc: i + 1, Line: n.Line, Err: ErrVerify,
				Msg: "rewriting the images would change the document elsewhere; nothing was rewritten"}
		}
	}
	return nil
}

// diff returns the first node of a whose counterpart in b differs, nil if
// none. Aliases are compared by name, not followed.
func diff(a, b *yaml.Node, edited map[*yaml.Node]edit, depth int) *yaml.Node {
	if depth > 10000 {
		return a
	}
	value, style := a.Value, a.Style
	if e, ok := edited[a]; ok {
		value, style = e.value, e.style
	}
	if a.Kind != b.Kind || a.Tag != b.Tag || value != b.Value || style != b.Style || a.Anchor != b.Anchor ||
		a.Line != b.Line || a.HeadComment != b.HeadComment || a.LineComment != b.LineComment ||
		a.FootComment != b.FootComment || len(a.Content) != len(b.Content) {
		return a
	}
	for i := range a.Content {
		if n := diff(a.Content[i], b.Content[i], edited, depth+1); n != nil {
			return n
		}
	}
	return nil
}
