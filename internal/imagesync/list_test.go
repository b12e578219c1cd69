package imagesync_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/detourhq/detour/internal/imagesync"
	"github.com/detourhq/detour/internal/rules"
)

func TestParseList(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		in   string
		want []imagesync.Entry // nil with errs set
		errs []string          // substrings, one per reported line, in order
	}{
		{
			name: "comments, blank lines and spaces are ignored and line numbers kept",
			in:   "# images\n\nnginx:1.25\n  quay.io/a/b:1   # trailing comment\r\n\t\ngcr.io/x/y@sha256:" + strings.Repeat("a", 64) + "\n",
			want: []imagesync.Entry{{Line: 3, Image: "nginx:1.25"}, {Line: 4, Image: "quay.io/a/b:1"}, {Line: 6, Image: "gcr.io/x/y@sha256:" + strings.Repeat("a", 64)}},
		},
		{
			name: "a last line without newline counts",
			in:   "a\nb",
			want: []imagesync.Entry{{Line: 1, Image: "a"}, {Line: 2, Image: "b"}},
		},
		{
			name: "an empty list is no error",
			in:   "# nothing\n\n",
			want: nil,
		},
		{
			name: "every invalid line is reported with its number and nothing is returned",
			in:   "ok:1\nUpper/Case:1\nok:2\ntwo words\nbad::tag\nx@sha256:short\n",
			errs: []string{`line 2: "Upper/Case:1"`, `line 4: "two words": more than one reference`, `line 5: "bad::tag"`, `line 6: "x@sha256:short"`},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := imagesync.ParseList(strings.NewReader(c.in))
			if c.errs == nil {
				if err != nil || !reflect.DeepEqual(got, c.want) {
					t.Fatalf("got %+v, %v; want %+v", got, err, c.want)
				}
				return
			}
			if got != nil || err == nil {
				t.Fatalf("got %+v, %v; want errors", got, err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(c.errs) {
				t.Fatalf("%d errors, want %d:\n%v", len(lines), len(c.errs), err)
			}
			for i, want := range c.errs {
				if !strings.Contains(lines[i], want) {
					t.Errorf("error %d: %q lacks %q", i, lines[i], want)
				}
			}
			var le *imagesync.LineError
			if !errors.As(err, &le) || le.Line != 2 {
				t.Errorf("first LineError: %+v", le)
			}
		})
	}
}

func TestParseListRefusesHugeLines(t *testing.T) {
	t.Parallel()
	_, err := imagesync.ParseList(strings.NewReader("a\n" + strings.Repeat("b", 100<<10) + "\n"))
	if err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("got %v", err)
	}
}

func FuzzParseList(f *testing.F) {
	for _, s := range []string{"nginx\n", "# c\n\na:1 # x\n", "a b\n", "x@sha256:" + strings.Repeat("0", 64), "\r\n\t#", "localhost:5000/a/b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := imagesync.ParseList(strings.NewReader(in))
		if err != nil {
			if got != nil {
				t.Fatalf("entries returned with an error: %v", got)
			}
			return
		}
		last := 0
		lines := strings.Split(in, "\n")
		for _, e := range got {
			if e.Line <= last || e.Line > len(lines) {
				t.Fatalf("line %d after %d (of %d)", e.Line, last, len(lines))
			}
			last = e.Line
			if e.Image == "" || strings.ContainsAny(e.Image, " \t#\r\n") {
				t.Fatalf("entry %q keeps spaces or a comment", e.Image)
			}
			if !strings.Contains(lines[e.Line-1], e.Image) {
				t.Fatalf("entry %q is not on line %d: %q", e.Image, e.Line, lines[e.Line-1])
			}
			if err := imagesync.ValidateReference(e.Image); err != nil {
				t.Fatalf("entry %q does not validate: %v", e.Image, err)
			}
			// The rule engine accepts it too: never Invalid.
			if d := (&rules.Set{}).Rewrite(e.Image); d.Reason == rules.Invalid {
				t.Fatalf("entry %q is invalid to the rules: %v", e.Image, d.Err)
			}
		}
	})
}

func TestPlanSaysWhyEachImageIsSkipped(t *testing.T) {
	t.Parallel()
	set := must(rules.Compile([]rules.Rule{
		{From: "docker.io", To: []string{"mirror.corp/hub", "backup.corp/hub"}, Origin: "test"},
		{From: "*", To: []string{"mirror.corp/{registry}"}, Origin: "test"},
		{From: "localhost:5000", To: []string{"m.corp/{registry}"}, Origin: "port"},
	}, "direct.to/"))
	jobs := imagesync.Plan(set, []imagesync.Entry{
		{Line: 1, Image: "nginx:1.25"},
		{Line: 2, Image: "quay.io/a/b@sha256:" + strings.Repeat("1", 64)},
		{Line: 3, Image: "direct.to/nginx"},
		{Line: 4, Image: "mirror.corp/hub/library/nginx:1"},
		{Line: 5, Image: "localhost:5000/x:1"},
		{Line: 6, Image: "nginx:1.25"},
	})
	want := []imagesync.Job{
		{Line: 1, Source: "nginx:1.25", Target: "mirror.corp/hub/library/nginx:1.25"},
		{Line: 2, Source: "quay.io/a/b@sha256:" + strings.Repeat("1", 64), Target: "mirror.corp/quay.io/a/b@sha256:" + strings.Repeat("1", 64)},
		{Line: 3, Source: "direct.to/nginx", Skip: "escaped: Pods pull nginx from its own registry"},
		{Line: 4, Source: "mirror.corp/hub/library/nginx:1", Skip: "already a mirror image"},
		{Line: 5, Source: "localhost:5000/x:1"},
		{Line: 6, Source: "nginx:1.25", Skip: "listed again (first on line 1)"},
	}
	for i := range want {
		got := jobs[i]
		if i == 4 {
			// "{registry}" with a port cannot be a path component.
			if got.Target != "" || !strings.Contains(got.Skip, "rule localhost:5000 (port) matched but") {
				t.Errorf("job %d: %+v", i, got)
			}
			continue
		}
		if got != want[i] {
			t.Errorf("job %d:\n got %+v\nwant %+v", i, got, want[i])
		}
	}
	empty := imagesync.Plan(must(rules.Compile(nil, "")), []imagesync.Entry{{Line: 1, Image: "nginx"}})
	if empty[0].Skip != "no rule matches: Pods pull it from its own registry" {
		t.Errorf("no rules: %+v", empty[0])
	}
}

func TestParseOriginalImages(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want map[string]string
		err  string
	}{
		{in: `{"containers/app":"nginx:1.25","initContainers/init":"busybox"}`, want: map[string]string{"containers/app": "nginx:1.25", "initContainers/init": "busybox"}},
		{in: `{}`, want: map[string]string{}},
		{in: `null`, err: "null"},
		{in: `["nginx"]`, err: "not a JSON object"},
		{in: `{"containers/a":1}`, err: "not a JSON object"},
		{in: `{"containers/a":"Not Valid"}`, err: `"containers/a": image "Not Valid"`},
		{in: ``, err: "not a JSON object"},
	} {
		got, err := imagesync.ParseOriginalImages(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: got %v, %v; want error %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: got %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func FuzzParseOriginalImages(f *testing.F) {
	f.Add(`{"containers/app":"nginx:1.25"}`)
	f.Add(`{"a":"b","c":"d@sha256:` + strings.Repeat("f", 64) + `"}`)
	f.Add(`null`)
	f.Fuzz(func(t *testing.T, in string) {
		m, err := imagesync.ParseOriginalImages(in)
		if err != nil {
			return
		}
		if m == nil {
			t.Fatal("nil map without an error")
		}
		for k, v := range m {
			if err := imagesync.ValidateReference(v); err != nil {
				t.Fatalf("%q: %q accepted but invalid: %v", k, v, err)
			}
		}
	})
}

func TestImagesFromPods(t *testing.T) {
	t.Parallel()
	pod := func(ns, name, ann string) corev1.Pod {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		if ann != "" {
			p.Annotations = map[string]string{imagesync.OriginalImagesAnnotation: ann, "other": "x"}
		}
		return p
	}
	got, warnings := imagesync.ImagesFromPods([]corev1.Pod{
		pod("a", "web-1", `{"containers/web":"nginx:1.25","containers/side":"quay.io/x/y:2"}`),
		pod("a", "web-2", `{"containers/web":"nginx:1.25"}`),
		pod("b", "plain", ""),
		pod("b", "broken", `{"containers/web":`),
		pod("c", "init", `{"initContainers/i":"busybox"}`),
	})
	want := []imagesync.Entry{{Image: "busybox"}, {Image: "nginx:1.25"}, {Image: "quay.io/x/y:2"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0].Error(), "pod b/broken") {
		t.Errorf("warnings %v", warnings)
	}
}
