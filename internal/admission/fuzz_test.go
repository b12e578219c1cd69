package admission

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
)

// FuzzReview: whatever the body, Review does not panic, and when it answers,
// the answer is an AdmissionReview that echoes the uid and whose patch
// applies to the object it was made for.
func FuzzReview(f *testing.F) {
	paths, _ := filepath.Glob("testdata/*.json")
	for _, path := range paths {
		if strings.HasSuffix(path, ".golden.json") {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	p := policyOf(f, parseConfig(f, "mirrors:\n  - from: \"*\"\n    to: m.test/{registry}\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := Review(context.Background(), body, p)
		if err != nil {
			return
		}
		var out struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Response   struct {
				UID     string `json:"uid"`
				Allowed bool   `json:"allowed"`
				Patch   []byte `json:"patch"`
			} `json:"response"`
		}
		if err := json.Unmarshal(res.Response, &out); err != nil {
			t.Fatalf("the response is not JSON: %v\n%s", err, res.Response)
		}
		if out.Kind != "AdmissionReview" || !out.Response.Allowed || out.Response.UID != strings.ToValidUTF8(res.UID, "\uFFFD") {
			t.Fatalf("response %s for uid %q", res.Response, res.UID)
		}
		if out.Response.Patch == nil {
			return
		}
		// A generic decode: keys match case-sensitively, as in the apiserver.
		var in map[string]any
		if err := json.Unmarshal(body, &in); err != nil {
			t.Fatalf("Review answered a body encoding/json refuses: %v", err)
		}
		object, err := json.Marshal(in["request"].(map[string]any)["object"])
		if err != nil {
			t.Fatal(err)
		}
		patch, err := jsonpatch.DecodePatch(out.Response.Patch)
		if err != nil {
			t.Fatalf("the patch does not decode: %v\n%s", err, out.Response.Patch)
		}
		if _, err := patch.Apply(object); err != nil {
			t.Fatalf("the patch does not apply: %v\n%s\nto %s", err, out.Response.Patch, object)
		}
	})
}
