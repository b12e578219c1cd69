package manifest_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/detourhq/detour/internal/config"
	"github.com/detourhq/detour/internal/manifest"
	"github.com/detourhq/detour/internal/rules"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current output")

// testSet compiles testdata/config.yaml, the fixed rules of the golden tests.
func testSet(t testing.TB) *rules.Set {
	t.Helper()
	cfg, err := config.LoadFile("testdata/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := cfg.Compile()
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func formatChanges(changes []manifest.Change) []byte {
	var b bytes.Buffer
	for _, c := range changes {
		b.WriteString(c.String())
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// golden compares got with the file, or writes it with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

func dirs(t *testing.T, pattern string) []string {
	t.Helper()
	ds, err := filepath.Glob(pattern)
	if err != nil || len(ds) == 0 {
		t.Fatalf("no test cases in %s (%v)", pattern, err)
	}
	return ds
}

// TestGolden rewrites testdata/golden/*/input.yaml and compares the output
// with expected.yaml and the changes with changes.txt.
func TestGolden(t *testing.T) {
	set := testSet(t)
	for _, dir := range dirs(t, "testdata/golden/*") {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			in, err := os.ReadFile(filepath.Join(dir, "input.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			out, changes, err := manifest.Rewrite(in, set)
			if err != nil {
				t.Fatalf("Rewrite: %v", err)
			}
			golden(t, filepath.Join(dir, "expected.yaml"), out)
			golden(t, filepath.Join(dir, "changes.txt"), formatChanges(changes))
			if len(changes) == 0 && !bytes.Equal(out, in) {
				t.Errorf("no changes reported, but the output differs from the input")
			}
			assertOnlyImageLinesDiffer(t, in, out, changes)
		})
	}
}

// assertOnlyImageLinesDiffer checks, independently of the golden files,
// that every line without a change is byte-identical and that each changed
// line still holds its old text around the new image.
func assertOnlyImageLinesDiffer(t *testing.T, in, out []byte, changes []manifest.Change) {
	t.Helper()
	inLines, outLines := splitLines(in), splitLines(out)
	if len(inLines) != len(outLines) {
		t.Fatalf("the output has %d lines, the input %d", len(outLines), len(inLines))
	}
	changed := map[int][]manifest.Change{}
	for _, c := range changes {
		changed[c.Line] = append(changed[c.Line], c)
	}
	for i := range inLines {
		a, b := inLines[i], outLines[i]
		cs, ok := changed[i+1]
		if !ok {
			if a != b {
				t.Errorf("line %d changed without an image change:\n in: %q\nout: %q", i+1, a, b)
			}
			continue
		}
		for _, c := range cs {
			if !strings.Contains(b, c.To) {
				t.Errorf("line %d: %q does not hold the new image %q", i+1, b, c.To)
			}
		}
	}
}

// splitLines splits after each line break as YAML counts them (LF, CR,
// CRLF, NEL, LS, PS), keeping the breaks.
func splitLines(b []byte) []string {
	var lines []string
	start := 0
	for i := 0; i < len(b); {
		n := 0
		switch {
		case b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n':
			n = 2
		case b[i] == '\r' || b[i] == '\n':
			n = 1
		case bytes.HasPrefix(b[i:], []byte("\u0085")):
			n = 2
		case bytes.HasPrefix(b[i:], []byte("\u2028")), bytes.HasPrefix(b[i:], []byte("\u2029")):
			n = 3
		}
		if n == 0 {
			i++
			continue
		}
		i += n
		lines = append(lines, string(b[start:i]))
		start = i
	}
	return append(lines, string(b[start:]))
}

// TestErrors feeds testdata/errors/*/input.yaml, each of which must fail with
// the message in error.txt and return nothing.
func TestErrors(t *testing.T) {
	set := testSet(t)
	want := map[string]error{
		"invalid-yaml":          manifest.ErrSyntax,
		"helm-template":         manifest.ErrTemplate,
		"helm-image":            manifest.ErrTemplate,
		"block-scalar":          manifest.ErrScalarStyle,
		"multiline-plain":       manifest.ErrScalarStyle,
		"multiline-quoted":      manifest.ErrScalarStyle,
		"alias-from-elsewhere":  manifest.ErrShared,
		"anchor-used-elsewhere": manifest.ErrShared,
		"merge-from-elsewhere":  manifest.ErrShared,
		"utf16":                 manifest.ErrEncoding,
	}
	for _, dir := range dirs(t, "testdata/errors/*") {
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			in, err := os.ReadFile(filepath.Join(dir, "input.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			out, changes, err := manifest.Rewrite(in, set)
			if err == nil {
				t.Fatalf("Rewrite succeeded, want an error; output:\n%s", out)
			}
			if out != nil || changes != nil {
				t.Errorf("on error Rewrite returned output (%d bytes) and %d changes, want none", len(out), len(changes))
			}
			sentinel, ok := want[name]
			if !ok {
				t.Fatalf("no expected sentinel error for %s in the test table", name)
			}
			if !errors.Is(err, sentinel) {
				t.Errorf("error %q is not %v", err, sentinel)
			}
			var e *manifest.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not a *manifest.Error", err)
			}
			golden(t, filepath.Join(dir, "error.txt"), []byte(err.Error()+"\n"))
		})
	}
}

func TestNothingToChangeReturnsInput(t *testing.T) {
	set := testSet(t)
	for _, in := range []string{
		"",
		"# only a comment\n",
		"---\n---\n",
		"apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: localhost:5000/x\n",
		"just: a mapping\n",
		"- a\n- list\n",
		"scalar\n",
	} {
		out, changes, err := manifest.Rewrite([]byte(in), set)
		if err != nil {
			t.Errorf("Rewrite(%q): %v", in, err)
			continue
		}
		if string(out) != in || len(changes) != 0 {
			t.Errorf("Rewrite(%q) = %q, %v; want the input and no changes", in, out, changes)
		}
	}
}

func TestSyntaxErrorNamesDocumentAndLine(t *testing.T) {
	set := testSet(t)
	in := "apiVersion: v1\nkind: Pod\n---\na: b\n---\nkey: [unclosed\nother: 1\n"
	_, _, err := manifest.Rewrite([]byte(in), set)
	var e *manifest.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v, want a *manifest.Error", err)
	}
	if e.Doc != 3 || e.Line == 0 || !errors.Is(err, manifest.ErrSyntax) || errors.Is(err, manifest.ErrTemplate) {
		t.Errorf("err = %+v (%v), want document 3 with a line, ErrSyntax and no template hint", e, err)
	}
}

func TestBadEncodingNamesLine(t *testing.T) {
	set := testSet(t)
	in := []byte("a: 1\nb: 2\nc: \xff\n")
	_, _, err := manifest.Rewrite(in, set)
	var e *manifest.Error
	if !errors.As(err, &e) || e.Line != 3 {
		t.Fatalf("err = %v, want a *manifest.Error at line 3", err)
	}
}

// TestPlainFallsBackToDoubleQuotes: an IPv6 mirror cannot be written as a
// plain scalar (it would read as a list), so it is double-quoted; quoted
// values keep their quotes.
func TestPlainFallsBackToDoubleQuotes(t *testing.T) {
	set, err := rules.Compile([]rules.Rule{{From: "docker.io", To: []string{"[fd00::1]:5000/hub"}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	in := "kind: Pod\nspec:\n  containers:\n  - image: nginx\n  - image: 'redis'\n  - {image: busybox}\n"
	want := "kind: Pod\nspec:\n  containers:\n  - image: \"[fd00::1]:5000/hub/library/nginx\"\n  - image: '[fd00::1]:5000/hub/library/redis'\n  - {image: \"[fd00::1]:5000/hub/library/busybox\"}\n"
	out, changes, err := manifest.Rewrite([]byte(in), set)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != want || len(changes) != 3 {
		t.Errorf("got\n%s\nwant\n%s\nchanges %v", out, want, changes)
	}
}

// TestEscapedToUnsafePlain: an escaped image whose rest would not read back
// as the same string in plain style is quoted rather than corrupting the file.
func TestEscapedToUnsafePlain(t *testing.T) {
	set := testSet(t)
	for in, want := range map[string]string{
		"kind: Pod\nspec: {containers: [{image: direct.to/true}]}\n":       "kind: Pod\nspec: {containers: [{image: \"true\"}]}\n",
		"kind: Pod\nspec: {containers: [{image: direct.to/1.5}]}\n":        "kind: Pod\nspec: {containers: [{image: \"1.5\"}]}\n",
		"kind: Pod\nspec: {containers: [{image: 'direct.to/*x'}]}\n":       "kind: Pod\nspec: {containers: [{image: '*x'}]}\n",
		"kind: Pod\nspec:\n  containers:\n  - image: direct.to/#x\n":       "kind: Pod\nspec:\n  containers:\n  - image: \"#x\"\n",
		"kind: Pod\nspec:\n  containers:\n  - image: direct.to/\n":         "kind: Pod\nspec:\n  containers:\n  - image: \"\"\n",
		"kind: Pod\nspec:\n  containers:\n  - image: \"direct.to/\\\"\"\n": "kind: Pod\nspec:\n  containers:\n  - image: \"\\\"\"\n",
	} {
		out, _, err := manifest.Rewrite([]byte(in), set)
		if err != nil {
			t.Errorf("Rewrite(%q): %v", in, err)
			continue
		}
		if string(out) != want {
			t.Errorf("Rewrite(%q) =\n%q\nwant\n%q", in, out, want)
		}
	}
}

func TestChangeString(t *testing.T) {
	c := manifest.Change{Doc: 2, Kind: "Deployment", Name: "web", Path: "spec.template.spec.containers[0].image",
		Line: 9, From: "nginx", To: "docker.m.daocloud.io/library/nginx"}
	want := "doc 2 Deployment/web spec.template.spec.containers[0].image: nginx -> docker.m.daocloud.io/library/nginx"
	if got := c.String(); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	c.Name = ""
	if got := c.String(); !strings.Contains(got, "Deployment/(unnamed) ") {
		t.Errorf("unnamed: got %q", got)
	}
}

// TestAliasBombIsRefused: aliases that expand exponentially are refused
// quickly, and aliases that contain themselves do not hang the walk.
func TestAliasBombIsRefused(t *testing.T) {
	set := testSet(t)
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: List\nitems:\n- &l0 {kind: Pod, spec: {containers: [{image: nginx}]}}\n")
	for i := 1; i <= 12; i++ {
		p := fmt.Sprintf("*l%d", i-1)
		fmt.Fprintf(&b, "- &l%d {kind: List, items: [%s, %s, %s, %s, %s, %s, %s, %s]}\n", i, p, p, p, p, p, p, p, p)
	}
	_, _, err := manifest.Rewrite([]byte(b.String()), set)
	if !errors.Is(err, manifest.ErrAliases) {
		t.Errorf("alias bomb: err = %v, want ErrAliases", err)
	}
	for _, in := range []string{
		"kind: List\nitems: &i\n- {kind: List, items: *i}\n- {kind: Pod, spec: {containers: [{image: nginx}]}}\n",
		"kind: Pod\nspec: &s\n  <<: *s\n  containers: [{image: nginx}]\n",
		"kind: Pod\nspec:\n  containers:\n  - &c\n    <<: *c\n    image: nginx\n",
	} {
		if _, _, err := manifest.Rewrite([]byte(in), set); err != nil && !errors.Is(err, manifest.ErrSyntax) && !errors.Is(err, manifest.ErrAliases) {
			t.Errorf("Rewrite(%q): unexpected %v", in, err)
		}
	}
}
