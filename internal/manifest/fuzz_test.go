package manifest_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/detourhq/detour/internal/manifest"
)

// FuzzRewrite: Rewrite never panics; on error it returns nothing; on
// success the output differs from the input only in image values: every
// line without a change is byte-identical, and parsing both gives the same
// trees except at the reported image paths, where the values are the
// reported From and To.
func FuzzRewrite(f *testing.F) {
	for _, pattern := range []string{"testdata/golden/*/input.yaml", "testdata/errors/*/input.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte("kind: Pod\nspec: {containers: [{image: nginx}, {image: &a quay.io/x}, {image: *a}]}\n"))
	f.Add([]byte("kind: List\nitems:\n- &p {kind: Pod, spec: {containers: [{image: nginx}]}}\n- *p\n"))
	set := testSet(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		out, changes, err := manifest.Rewrite(in, set)
		if err != nil {
			if out != nil || changes != nil {
				t.Fatalf("error %v with output", err)
			}
			return
		}
		if len(changes) == 0 {
			if !bytes.Equal(out, in) {
				t.Fatalf("no changes, but output differs")
			}
			return
		}
		changedLines := map[int]bool{}
		for _, c := range changes {
			changedLines[c.Line] = true
		}
		inLines, outLines := splitLines(in), splitLines(out)
		if len(inLines) != len(outLines) {
			t.Fatalf("line count %d -> %d", len(inLines), len(outLines))
		}
		for i := range inLines {
			if !changedLines[i+1] && inLines[i] != outLines[i] {
				t.Fatalf("line %d changed without an image change: %q -> %q", i+1, inLines[i], outLines[i])
			}
		}
		a, b := parseAll(t, in), parseAll(t, out)
		if len(a) != len(b) {
			t.Fatalf("%d documents -> %d", len(a), len(b))
		}
		for i := range a {
			// A path may repeat: a mapping may have a duplicate image key.
			allowed := map[string][][2]string{}
			for _, c := range changes {
				if c.Doc == i+1 {
					allowed[c.Path] = append(allowed[c.Path], [2]string{c.From, c.To})
				}
			}
			compareMasked(t, a[i], b[i], "", allowed)
		}
	})
}

func parseAll(t *testing.T, data []byte) []*yaml.Node {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if err == io.EOF {
			return docs
		}
		if err != nil {
			t.Fatalf("re-parsing: %v", err)
		}
		docs = append(docs, &n)
	}
}

// compareMasked walks both trees as written (aliases by name) and allows a
// scalar to differ only at a path in allowed, from its From to its To.
func compareMasked(t *testing.T, a, b *yaml.Node, path string, allowed map[string][][2]string) {
	t.Helper()
	if a.Kind != b.Kind || a.Tag != b.Tag || a.Anchor != b.Anchor || len(a.Content) != len(b.Content) ||
		a.HeadComment != b.HeadComment || a.LineComment != b.LineComment || a.FootComment != b.FootComment {
		t.Fatalf("%s: node differs: %+v vs %+v", path, a, b)
	}
	if a.Value != b.Value {
		if a.Kind != yaml.ScalarNode || !slices.Contains(allowed[path], [2]string{a.Value, b.Value}) {
			t.Fatalf("%s: %q -> %q is not a reported change (%v)", path, a.Value, b.Value, allowed)
		}
	}
	switch a.Kind {
	case yaml.DocumentNode:
		for i := range a.Content {
			compareMasked(t, a.Content[i], b.Content[i], path, allowed)
		}
	case yaml.SequenceNode:
		for i := range a.Content {
			compareMasked(t, a.Content[i], b.Content[i], fmt.Sprintf("%s[%d]", path, i), allowed)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(a.Content); i += 2 {
			compareMasked(t, a.Content[i], b.Content[i], path+"<key>", allowed)
			key := a.Content[i].Value
			p := key
			if path != "" {
				p = path + "." + key
			}
			if a.Content[i].Tag == "!!merge" {
				p = path + "<<"
			}
			compareMasked(t, a.Content[i+1], b.Content[i+1], p, allowed)
		}
	}
}
