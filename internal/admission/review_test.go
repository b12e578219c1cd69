package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ from the current output")

// customConfig has a path-prefix rule, a fallback chain and namespace globs.
const customConfig = `
presets: []
namespaces:
  include: ["team-*"]
mirrors:
  - from: docker.io
    to: [hub-a.mirror.test, hub-b.mirror.test]
  - from: gcr.io
    to: gcr.mirror.test
  - from: gcr.io/google-containers
    to: mirror.test/google
`

// The recorded AdmissionReviews in testdata/NAME.json, each answered under a
// config and checked three ways: the golden file testdata/NAME.golden.json
// (the response, its patch decoded, and the Pod with the patch applied by
// the JSON patch library kube-apiserver uses), and the images and annotation
// the case expects, written out here so that regenerating the golden files
// cannot hide a wrong answer.
var reviewCases = []struct {
	name          string            // testdata/NAME.json
	config        string            // YAML; "" is the embedded default
	outcome       Outcome           // expected outcome
	skip          string            // expected skip reason
	images        map[string]string // list/name -> image after the patch, for the containers listed
	originals     map[string]string // the original-images annotation after the patch; nil: absent
	warnings      []string          // a substring of each expected warning, in order
	annotationsOp string            // path of the patch's annotation op, when there is one
}{
	{
		name:    "create-v1",
		outcome: Patched,
		images: map[string]string{
			"initContainers/init": "k8s.m.daocloud.io/pause:3.9",
			"containers/web":      "docker.m.daocloud.io/library/nginx:1.25",
			"containers/metrics":  "quay.m.daocloud.io/prometheus/node-exporter:v1.8.2",
			"containers/tool":     "ghcr.m.daocloud.io/example/tool:v1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			"containers/local":    "localhost:5000/team/app:1",
			"containers/mirrored": "docker.m.daocloud.io/library/redis:7",
		},
		originals: map[string]string{
			"initContainers/init": "registry.k8s.io/pause:3.9",
			"containers/web":      "nginx:1.25",
			"containers/metrics":  "quay.io/prometheus/node-exporter:v1.8.2",
			"containers/tool":     "ghcr.io/example/tool:v1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		},
		annotationsOp: "/metadata/annotations",
	},
	{
		name:    "dry-run",
		outcome: Patched,
		images:  map[string]string{"containers/web": "docker.m.daocloud.io/library/nginx:1.25"},
		originals: map[string]string{
			"initContainers/init": "registry.k8s.io/pause:3.9",
			"containers/web":      "nginx:1.25",
			"containers/metrics":  "quay.io/prometheus/node-exporter:v1.8.2",
			"containers/tool":     "ghcr.io/example/tool:v1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		},
		annotationsOp: "/metadata/annotations",
	},
	{
		name:    "create-v1beta1",
		outcome: Patched,
		images: map[string]string{
			"initContainers/init": "k8s-gcr.m.daocloud.io/busybox:1.24",
			"containers/web":      "docker.m.daocloud.io/library/nginx:1.25",
		},
		originals:     map[string]string{"initContainers/init": "k8s.gcr.io/busybox:1.24", "containers/web": "nginx:1.25"},
		annotationsOp: "/metadata/annotations",
	},
	{
		name:    "create-with-annotations",
		outcome: Patched,
		images: map[string]string{
			"containers/api":  "gcr.m.daocloud.io/distroless/static:nonroot",
			"containers/side": "docker.m.daocloud.io/library/busybox:1.36",
		},
		originals:     map[string]string{"containers/api": "gcr.io/distroless/static:nonroot", "containers/side": "busybox:1.36"},
		annotationsOp: "/metadata/annotations/detour.dev~1original-images",
	},
	{
		name:          "create-null-annotations",
		outcome:       Patched,
		images:        map[string]string{"containers/api": "docker.m.daocloud.io/library/nginx:1.25"},
		originals:     map[string]string{"containers/api": "nginx:1.25"},
		annotationsOp: "/metadata/annotations",
	},
	{
		name:          "create-empty-annotations",
		outcome:       Patched,
		images:        map[string]string{"containers/api": "docker.m.daocloud.io/library/nginx:1.25"},
		originals:     map[string]string{"containers/api": "nginx:1.25"},
		annotationsOp: "/metadata/annotations/detour.dev~1original-images",
	},
	{
		// A label change: the images equal oldObject's, so nothing is considered.
		name:    "update-same-images",
		outcome: Unchanged,
		images: map[string]string{
			"containers/web":  "docker.m.daocloud.io/library/nginx:1.25",
			"containers/side": "docker.m.daocloud.io/library/busybox:1.36",
		},
		originals: map[string]string{"containers/web": "nginx:1.25", "containers/side": "busybox:1.36"},
	},
	{
		// A Pod created before detour: an update must not rewrite (and so
		// restart) what was already running.
		name:    "update-unmutated-pod",
		outcome: Unchanged,
		images:  map[string]string{"containers/web": "nginx:1.25"},
	},
	{
		name:          "update-changed-image",
		outcome:       Patched,
		images:        map[string]string{"containers/web": "docker.m.daocloud.io/library/nginx:1.26", "containers/side": "docker.m.daocloud.io/library/busybox:1.36"},
		originals:     map[string]string{"containers/web": "nginx:1.26", "containers/side": "busybox:1.36"},
		annotationsOp: "/metadata/annotations/detour.dev~1original-images",
	},
	{
		// kubectl debug: only the new ephemeral container is rewritten; the
		// regular container, not rewritten when the Pod was made, stays so.
		name:    "ephemeral-containers",
		outcome: Patched,
		images: map[string]string{
			"containers/app":                 "nginx:1.25",
			"ephemeralContainers/debugger-1": "docker.m.daocloud.io/library/busybox:1.36",
			"ephemeralContainers/debugger-2": "docker.m.daocloud.io/library/busybox:1.36",
		},
		originals:     map[string]string{"ephemeralContainers/debugger-2": "busybox:1.36"},
		annotationsOp: "/metadata/annotations",
	},
	{name: "excluded-namespace", outcome: Skipped, skip: SkipNamespace, images: map[string]string{"containers/web": "nginx:1.25"}},
	{name: "own-namespace", outcome: Skipped, skip: SkipOwnNamespace, images: map[string]string{"containers/detour": "ghcr.io/detourhq/detour:v0.1.0"}},
	{name: "skip-label", outcome: Skipped, skip: SkipLabelled, images: map[string]string{"containers/web": "nginx:1.25"}},
	{
		// Only "true" skips.
		name:          "skip-label-false",
		outcome:       Patched,
		images:        map[string]string{"containers/web": "docker.m.daocloud.io/library/nginx:1.25"},
		originals:     map[string]string{"containers/web": "nginx:1.25"},
		annotationsOp: "/metadata/annotations",
	},
	{
		name:    "escape",
		outcome: Patched,
		images: map[string]string{
			"containers/short": "busybox:latest",
			"containers/long":  "gcr.io/a/b:1",
			"containers/web":   "docker.m.daocloud.io/library/nginx:1.25",
		},
		originals: map[string]string{
			"containers/short": "direct.to/busybox:latest",
			"containers/long":  "direct.to/gcr.io/a/b:1",
			"containers/web":   "nginx:1.25",
		},
		annotationsOp: "/metadata/annotations",
	},
	{
		name:          "invalid-image",
		outcome:       Patched,
		images:        map[string]string{"containers/bad": "Nginx:Latest:x", "containers/web": "docker.m.daocloud.io/library/nginx:1.25", "containers/empty": ""},
		originals:     map[string]string{"containers/web": "nginx:1.25"},
		warnings:      []string{`containers/bad: "Nginx:Latest:x" is not a valid image reference; left as written`},
		annotationsOp: "/metadata/annotations",
	},
	{name: "not-a-pod", outcome: Skipped, skip: SkipNotPod},
	{
		// The webhook called again after another one added envoy: the escaped
		// and the rewritten image are detour's own work and stay; envoy is new.
		name:    "reinvocation",
		outcome: Patched,
		images: map[string]string{
			"containers/web":   "docker.m.daocloud.io/library/nginx:1.25",
			"containers/short": "busybox:latest",
			"containers/envoy": "docker.m.daocloud.io/envoyproxy/envoy:v1.30.1",
		},
		originals: map[string]string{
			"containers/short": "direct.to/busybox:latest",
			"containers/web":   "nginx:1.25",
			"containers/envoy": "envoyproxy/envoy:v1.30.1",
		},
		annotationsOp: "/metadata/annotations/detour.dev~1original-images",
	},
	{
		name:    "custom-config",
		config:  customConfig,
		outcome: Patched,
		images: map[string]string{
			"initContainers/init":    "mirror.test/google/pause:3.2",
			"containers/web":         "hub-a.mirror.test/library/nginx:1.25",
			"containers/prefix":      "mirror.test/google/busybox:1.24",
			"containers/near-prefix": "gcr.mirror.test/google-containers-x/tool:1",
			"containers/host":        "gcr.mirror.test/project/app:2",
		},
		originals: map[string]string{
			"initContainers/init":    "gcr.io/google-containers/pause:3.2",
			"containers/web":         "nginx:1.25",
			"containers/prefix":      "gcr.io/google-containers/busybox:1.24",
			"containers/near-prefix": "gcr.io/google-containers-x/tool:1",
			"containers/host":        "gcr.io/project/app:2",
		},
		annotationsOp: "/metadata/annotations",
	},
	{
		// The same Pod in a namespace the custom config does not include.
		name:    "create-v1beta1",
		config:  customConfig,
		outcome: Skipped,
		skip:    SkipNamespace,
		images:  map[string]string{"containers/web": "nginx:1.25"},
	},
	{name: "create-v1", config: "enabled: false\n", outcome: Skipped, skip: SkipDisabled, images: map[string]string{"containers/web": "nginx:1.25"}},
	{name: "delete", outcome: Skipped, skip: SkipOperation},
	{name: "status-subresource", outcome: Skipped, skip: SkipSubResource, images: map[string]string{"containers/web": "nginx:1.25"}},
}

func TestReviewRecordedRequests(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, tc := range reviewCases {
		golden := tc.name
		if tc.config != "" {
			golden += "." + configName(tc.config)
		}
		if seen[golden] {
			t.Fatalf("two cases write %s.golden.json", golden)
		}
		seen[golden] = true
		t.Run(golden, func(t *testing.T) {
			t.Parallel()
			body, err := os.ReadFile(filepath.Join("testdata", tc.name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			p := defaultPolicy(t)
			if tc.config != "" {
				p = policyOf(t, parseConfig(t, tc.config))
			}
			res, err := Review(context.Background(), body, p)
			if err != nil {
				t.Fatalf("Review: %v", err)
			}
			if res.Outcome != tc.outcome || res.Skip != tc.skip {
				t.Errorf("outcome %v (skip %q), want %v (skip %q)", res.Outcome, res.Skip, tc.outcome, tc.skip)
			}

			var in struct {
				APIVersion string `json:"apiVersion"`
				Request    struct {
					UID    string          `json:"uid"`
					Object json.RawMessage `json:"object"`
				} `json:"request"`
			}
			mustUnmarshal(t, body, &in)
			out := decodeResponse(t, res.Response)
			if out.APIVersion != in.APIVersion || out.Kind != "AdmissionReview" {
				t.Errorf("response apiVersion %q kind %q, want %q AdmissionReview", out.APIVersion, out.Kind, in.APIVersion)
			}
			r := out.Response
			if r == nil || string(r.UID) != in.Request.UID || !r.Allowed {
				t.Fatalf("response %+v: want allowed with uid %q", r, in.Request.UID)
			}

			object := in.Request.Object
			var ops []map[string]any
			if r.Patch != nil {
				if r.PatchType == nil || *r.PatchType != admissionv1.PatchTypeJSONPatch {
					t.Errorf("patchType %v, want JSONPatch", r.PatchType)
				}
				patch, err := jsonpatch.DecodePatch(r.Patch)
				if err != nil {
					t.Fatalf("decoding the patch: %v\n%s", err, r.Patch)
				}
				if object, err = patch.Apply(object); err != nil {
					t.Fatalf("applying the patch: %v\n%s", err, r.Patch)
				}
				mustUnmarshal(t, r.Patch, &ops)
			}
			if (r.Patch != nil) != (tc.outcome == Patched) {
				t.Errorf("patch %s, want one: %v", r.Patch, tc.outcome == Patched)
			}
			checkOps(t, ops, tc.annotationsOp)

			var pod corev1.Pod
			if tc.skip != SkipNotPod && tc.skip != SkipOperation {
				mustUnmarshal(t, object, &pod)
				got := images(&pod)
				for field, want := range tc.images {
					if got[field] != want {
						t.Errorf("image of %s = %q, want %q", field, got[field], want)
					}
				}
				if diff := cmp.Diff(tc.originals, originals(t, &pod)); diff != "" {
					t.Errorf("annotation %s (-want +got):\n%s", OriginalImagesAnnotation, diff)
				}
			}
			if len(r.Warnings) != len(tc.warnings) {
				t.Errorf("warnings %q, want %d", r.Warnings, len(tc.warnings))
			}
			for i := range min(len(r.Warnings), len(tc.warnings)) {
				if !strings.Contains(r.Warnings[i], tc.warnings[i]) {
					t.Errorf("warning %d = %q, want it to contain %q", i, r.Warnings[i], tc.warnings[i])
				}
			}

			// Golden: the response with its patch decoded, and the patched object.
			r.Patch = nil
			checkGolden(t, filepath.Join("testdata", golden+".golden.json"), map[string]any{
				"response": r,
				"patch":    ops,
				"object":   json.RawMessage(object),
			})
		})
	}
}

// checkOps checks the patch's shape: a replace of an existing image per
// change, and at most one annotation op, at annotationsOp.
func checkOps(t *testing.T, ops []map[string]any, annotationsOp string) {
	t.Helper()
	var annotation []string
	for _, op := range ops {
		path, _ := op["path"].(string)
		switch {
		case strings.HasPrefix(path, "/spec/"):
			if op["op"] != "replace" || !strings.HasSuffix(path, "/image") {
				t.Errorf("op %v: want a replace of an image", op)
			}
		case strings.HasPrefix(path, "/metadata"):
			if op["op"] != "add" {
				t.Errorf("op %v: want an add", op)
			}
			annotation = append(annotation, path)
		default:
			t.Errorf("op %v touches neither an image nor the annotations", op)
		}
	}
	want := []string(nil)
	if annotationsOp != "" {
		want = []string{annotationsOp}
	}
	if diff := cmp.Diff(want, annotation); diff != "" {
		t.Errorf("annotation ops (-want +got):\n%s", diff)
	}
}

// configName names a test config in golden file names.
func configName(yaml string) string {
	switch yaml {
	case customConfig:
		return "custom"
	case "enabled: false\n":
		return "disabled"
	}
	panic("name this config in configName")
}

// decodeResponse decodes a response with the k8s.io/api types, as the
// apiserver does; v1beta1 has the same fields.
func decodeResponse(t *testing.T, b []byte) *admissionv1.AdmissionReview {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var rv admissionv1.AdmissionReview
	if err := dec.Decode(&rv); err != nil {
		t.Fatalf("decoding the response: %v\n%s", err, b)
	}
	return &rv
}

func mustUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
}

// images maps list/name to image for every container of a Pod.
func images(p *corev1.Pod) map[string]string {
	m := map[string]string{}
	for _, c := range p.Spec.InitContainers {
		m["initContainers/"+c.Name] = c.Image
	}
	for _, c := range p.Spec.Containers {
		m["containers/"+c.Name] = c.Image
	}
	for _, c := range p.Spec.EphemeralContainers {
		m["ephemeralContainers/"+c.Name] = c.Image
	}
	return m
}

// originals decodes the original-images annotation; nil when absent.
func originals(t *testing.T, p *corev1.Pod) map[string]string {
	t.Helper()
	v, ok := p.Annotations[OriginalImagesAnnotation]
	if !ok {
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		t.Fatalf("annotation %s = %q: %v", OriginalImagesAnnotation, v, err)
	}
	return m
}

// checkGolden compares v, as indented JSON, with the file at path, or
// writes the file with -update.
func checkGolden(t *testing.T, path string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got; -update rewrites it):\n%s", path, diff)
	}
}
