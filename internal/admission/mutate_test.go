package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"

	"github.com/detourhq/detour/internal/rules"
)

func TestReviewRefusesWhatIsNoAdmissionReview(t *testing.T) {
	t.Parallel()
	pod := `{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"nginx"}]}}`
	for _, tc := range []struct {
		name string
		body string
		want string // a substring of the error
	}{
		{"an empty body", "", "the body is empty"},
		{"a body of blanks", " \n\t", "the body is empty"},
		{"text that is not JSON", "hello", "not JSON: invalid character 'h' looking for beginning of value at offset 0"},
		{"JSON cut short", `{"kind":"AdmissionReview","request":{"uid":`, "not JSON: unexpected end of JSON input"},
		{"JSON followed by more", `{} {}`, "not JSON: invalid character '{' after top-level value"},
		{"an array", `[]`, "the body is an array, not an AdmissionReview object"},
		{"an empty object", `{}`, `kind is "", want AdmissionReview`},
		{"another kind", `{"apiVersion":"admission.k8s.io/v1","kind":"TokenReview","request":{"uid":"1"}}`, `kind is "TokenReview", want AdmissionReview`},
		{"an unknown version", `{"apiVersion":"admission.k8s.io/v2","kind":"AdmissionReview","request":{"uid":"1"}}`, `apiVersion is "admission.k8s.io/v2"`},
		{"no request", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, "has no request"},
		{"a null request", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null}`, "has no request"},
		{"a request that is a string", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":"x"}`, "request: want an object, got a string"},
		{"no uid", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"operation":"CREATE"}}`, "the request has no uid"},
		{"a uid that is a number", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":7}}`, "request.uid: want a string, got a number"},
		{
			"a Pod whose image is a number",
			`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":[{"name":"c","image":5}]}}}}`,
			"request.object.spec.containers[].image: want a string, got a number",
		},
		{
			"a Pod whose labels are a list",
			`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"kind":"Pod"},"operation":"UPDATE","object":` + pod + `,"oldObject":{"metadata":{"labels":[]}}}}`,
			"request.oldObject.metadata.labels: want an object, got an array",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Review(context.Background(), []byte(tc.body), defaultPolicy(t))
			if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Review(%.40q) error = %v, want ErrBadRequest containing %q", tc.body, err, tc.want)
			}
		})
	}
}

func TestReviewToleratesOddFieldsOfOtherKinds(t *testing.T) {
	t.Parallel()
	// A ConfigMap's spec is not a Pod's: its fields' types must not matter.
	body := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","kind":{"group":"","version":"v1","kind":"ConfigMap"},` +
		`"operation":"CREATE","object":{"metadata":{"labels":"odd"},"spec":{"containers":"odd"}}}}`
	res, err := Review(context.Background(), []byte(body), defaultPolicy(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != Skipped || res.Skip != SkipNotPod {
		t.Errorf("outcome %v %q, want skipped %q", res.Outcome, res.Skip, SkipNotPod)
	}
	want := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"u1","allowed":true}}`
	if string(res.Response) != want {
		t.Errorf("response\n%s\nwant\n%s", res.Response, want)
	}
}

func TestDryRunGetsTheSameAnswer(t *testing.T) {
	t.Parallel()
	p := defaultPolicy(t)
	body, err := os.ReadFile("testdata/create-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	dry := strings.Replace(string(body), `"dryRun": false`, `"dryRun": true`, 1)
	if dry == string(body) {
		t.Fatal("the test request has no dryRun: false to flip")
	}
	real, err := Review(context.Background(), body, p)
	if err != nil {
		t.Fatal(err)
	}
	dryRes, err := Review(context.Background(), []byte(dry), p)
	if err != nil {
		t.Fatal(err)
	}
	if real.DryRun || !dryRes.DryRun {
		t.Errorf("DryRun read as %v and %v, want false and true", real.DryRun, dryRes.DryRun)
	}
	if string(real.Response) != string(dryRes.Response) {
		t.Errorf("a dry run got another answer:\nreal %s\ndry  %s", real.Response, dryRes.Response)
	}
}

// TestPatchTouchesOnlyImagesAndAnnotations applies every recorded patch and
// checks that, images and annotations aside, the Pod is byte-for-byte the
// one sent, unknown fields included.
func TestPatchTouchesOnlyImagesAndAnnotations(t *testing.T) {
	t.Parallel()
	paths, _ := filepath.Glob("testdata/*.json")
	paths = append(paths, "../../hack/load/body.json")
	patched := 0
	for _, path := range paths {
		if strings.HasSuffix(path, ".golden.json") {
			continue
		}
		body, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Review(context.Background(), body, defaultPolicy(t))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if res.Outcome != Patched {
			continue
		}
		patched++
		var in struct {
			Request struct{ Object json.RawMessage } `json:"request"`
		}
		mustUnmarshal(t, body, &in)
		out := decodeResponse(t, res.Response)
		patch, err := jsonpatch.DecodePatch(out.Response.Patch)
		if err != nil {
			t.Fatal(err)
		}
		after, err := patch.Apply(in.Request.Object)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if diff := cmp.Diff(stripImages(t, in.Request.Object), stripImages(t, after)); diff != "" {
			t.Errorf("%s: the patch changed more than images and annotations (-sent +patched):\n%s", path, diff)
		}
	}
	if patched < 10 {
		t.Errorf("only %d recorded requests were patched; the test proves little", patched)
	}
}

// stripImages decodes a Pod generically and removes every image and the
// annotations.
func stripImages(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	mustUnmarshal(t, b, &m)
	if meta, ok := m["metadata"].(map[string]any); ok {
		delete(meta, "annotations")
	}
	spec, _ := m["spec"].(map[string]any)
	for _, l := range listNames {
		list, _ := spec[l].([]any)
		for _, c := range list {
			delete(c.(map[string]any), "image")
		}
	}
	return m
}

func TestAnnotationEdgeCases(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		metadata string            // the Pod's metadata, JSON
		want     map[string]string // annotations after the patch
		warning  string            // substring of the one expected warning, "" for none
	}{
		{
			name:     "a Pod without metadata gets metadata",
			metadata: ``,
			want:     map[string]string{OriginalImagesAnnotation: `{"containers/c":"nginx:1.25"}`},
		},
		{
			name:     "other annotations are kept",
			metadata: `"metadata":{"annotations":{"a":"1","detour.dev/other":"2"}},`,
			want:     map[string]string{"a": "1", "detour.dev/other": "2", OriginalImagesAnnotation: `{"containers/c":"nginx:1.25"}`},
		},
		{
			name:     "an unreadable annotation is replaced, with a warning",
			metadata: `"metadata":{"annotations":{"detour.dev/original-images":"not json"}},`,
			want:     map[string]string{OriginalImagesAnnotation: `{"containers/c":"nginx:1.25"}`},
			warning:  "is not a JSON object of strings; it is replaced",
		},
		{
			name:     "entries of containers that changed nothing are kept, sorted",
			metadata: `"metadata":{"annotations":{"detour.dev/original-images":"{\"initContainers/z\":\"a\",\"containers/a\":\"b\"}"}},`,
			want:     map[string]string{OriginalImagesAnnotation: `{"containers/a":"b","containers/c":"nginx:1.25","initContainers/z":"a"}`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			object := `{` + tc.metadata + `"spec":{"containers":[{"name":"c","image":"nginx:1.25"}]}}`
			res, after := reviewPod(t, defaultPolicy(t), "CREATE", object, "")
			var pod struct {
				Metadata struct{ Annotations map[string]string }
			}
			mustUnmarshal(t, after, &pod)
			if diff := cmp.Diff(tc.want, pod.Metadata.Annotations); diff != "" {
				t.Errorf("annotations (-want +got):\n%s", diff)
			}
			switch {
			case tc.warning == "" && len(res.Warnings) > 0:
				t.Errorf("warnings %q, want none", res.Warnings)
			case tc.warning != "" && (len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], tc.warning)):
				t.Errorf("warnings %q, want one containing %q", res.Warnings, tc.warning)
			}
		})
	}
}

func TestReinvocationLeavesDetoursOwnWorkAlone(t *testing.T) {
	t.Parallel()
	p := defaultPolicy(t)
	// First pass: an escape and a rewrite.
	object := `{"metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"direct.to/nginx:1.25"},{"name":"b","image":"busybox"}]}}`
	_, once := reviewPod(t, p, "CREATE", object, "")
	// Second pass, as reinvocationPolicy IfNeeded does after another webhook.
	res, twice := reviewPod(t, p, "CREATE", string(once), "")
	if res.Outcome != Unchanged {
		t.Errorf("second pass: %v with changes %+v, want unchanged", res.Outcome, res.Changes)
	}
	if string(once) != string(twice) {
		t.Errorf("the second pass changed the Pod:\n%s\n%s", once, twice)
	}
	// Without the annotation the escaped image would be rewritten: the
	// annotation is what protects it.
	stripped := strings.Replace(string(once), OriginalImagesAnnotation, "x", 1)
	res, _ = reviewPod(t, p, "CREATE", stripped, "")
	if len(res.Changes) != 1 || res.Changes[0].From != "nginx:1.25" {
		t.Errorf("without the annotation: changes %+v, want nginx:1.25 rewritten", res.Changes)
	}
}

func TestUpdateOfARecordedContainerWithANewImage(t *testing.T) {
	t.Parallel()
	p := defaultPolicy(t)
	ann := `{\"containers/a\":\"direct.to/nginx:1.25\"}`
	old := `{"metadata":{"name":"p","annotations":{"detour.dev/original-images":"` + ann + `"}},"spec":{"containers":[{"name":"a","image":"nginx:1.25"}]}}`
	// The user asks for another image: it is new, so it is rewritten even
	// though an entry for the container exists.
	object := strings.Replace(old, `"image":"nginx:1.25"`, `"image":"nginx:1.26"`, 1)
	res, _ := reviewPod(t, p, "UPDATE", object, old)
	want := []Change{{Field: "containers/a", From: "nginx:1.26", To: "docker.m.daocloud.io/library/nginx:1.26", Reason: rules.Rewritten, Rule: "docker.io"}}
	if diff := cmp.Diff(want, res.Changes); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
}

// reviewPod reviews object (and oldObject, for an UPDATE) as a Pod in
// namespace "shop" and returns the result and the patched object.
func reviewPod(t *testing.T, p *Policy, op, object, oldObject string) (Result, []byte) {
	t.Helper()
	if oldObject == "" {
		oldObject = "null"
	}
	body := fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},`+
		`"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"shop","operation":%q,"object":%s,"oldObject":%s}}`, op, object, oldObject)
	res, err := Review(context.Background(), []byte(body), p)
	if err != nil {
		t.Fatalf("Review: %v", err)
	}
	out := decodeResponse(t, res.Response)
	if out.Response.Patch == nil {
		return res, []byte(object)
	}
	patch, err := jsonpatch.DecodePatch(out.Response.Patch)
	if err != nil {
		t.Fatal(err)
	}
	after, err := patch.Apply([]byte(object))
	if err != nil {
		t.Fatalf("applying %s: %v", out.Response.Patch, err)
	}
	return res, after
}
