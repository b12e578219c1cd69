package admission

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
)

// measureCPU reports the CPU time per iteration as cpu-ns/op when the
// benchmark ends. On a shared machine ns/op is wall time and swings with the
// other processes; CPU time does not.
func measureCPU(b *testing.B) {
	start := cpuTime()
	b.Cleanup(func() {
		if b.N > 0 {
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		}
	})
}

// loadBody is the load test's request: a 5.8 KB AdmissionReview of a Pod
// made by a Deployment (3 images, env, probes, volumes, managedFields).
func loadBody(tb testing.TB) []byte {
	tb.Helper()
	body, err := os.ReadFile("../../hack/load/body.json")
	if err != nil {
		tb.Fatal(err)
	}
	return body
}

// BenchmarkReview is the whole hot path: decode, decide, patch, encode.
func BenchmarkReview(b *testing.B) {
	body := loadBody(b)
	p := defaultPolicy(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	measureCPU(b)
	for b.Loop() {
		res, err := Review(context.Background(), body, p)
		if err != nil || res.Outcome != Patched {
			b.Fatalf("Review: %v, outcome %v", err, res.Outcome)
		}
	}
}

// BenchmarkReviewUnchanged is a Pod whose images need nothing.
func BenchmarkReviewUnchanged(b *testing.B) {
	body := loadBody(b)
	p := defaultPolicy(b)
	p.Enabled = false
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	measureCPU(b)
	for b.Loop() {
		if _, err := Review(context.Background(), body, p); err != nil {
			b.Fatal(err)
		}
	}
}

// The three ways of reading the request, compared: what the hot path uses
// (the scanner), the same few fields with encoding/json, and the whole
// AdmissionReview and Pod into k8s.io/api types as controller-runtime does.

func BenchmarkDecode(b *testing.B) {
	body := loadBody(b)
	b.Run("scanner", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		measureCPU(b)
		for b.Loop() {
			st := getState()
			if _, err := decodeReview(body, st); err != nil {
				b.Fatal(err)
			}
			putState(st)
		}
	})
	b.Run("encoding-json-light", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		measureCPU(b)
		for b.Loop() {
			var rv lightReview
			if err := json.Unmarshal(body, &rv); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("k8s-api-full", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		measureCPU(b)
		for b.Loop() {
			var rv admissionv1.AdmissionReview
			if err := json.Unmarshal(body, &rv); err != nil {
				b.Fatal(err)
			}
			var pod corev1.Pod
			if err := json.Unmarshal(rv.Request.Object.Raw, &pod); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// lightReview is the smallest struct encoding/json can fill with what the
// webhook needs.
type lightReview struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Request    *struct {
		UID  string `json:"uid"`
		Kind struct {
			Group, Version, Kind string
		} `json:"kind"`
		SubResource string    `json:"subResource"`
		Operation   string    `json:"operation"`
		Namespace   string    `json:"namespace"`
		DryRun      *bool     `json:"dryRun"`
		Object      *lightPod `json:"object"`
		OldObject   *lightPod `json:"oldObject"`
	} `json:"request"`
}

type lightPod struct {
	Metadata struct {
		Name         string            `json:"name"`
		GenerateName string            `json:"generateName"`
		Namespace    string            `json:"namespace"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		Containers          []lightContainer `json:"containers"`
		InitContainers      []lightContainer `json:"initContainers"`
		EphemeralContainers []lightContainer `json:"ephemeralContainers"`
	} `json:"spec"`
}

type lightContainer struct {
	Name  string `json:"name"`
	Image string `json:"image"`
}

// benchChainConfig gives every image of the load body a two-mirror chain.
const benchChainConfig = `
presets: []
check:
  enabled: true
mirrors:
  - from: docker.io
    to: [lacks.mirror.test/hub, has.mirror.test/hub]
  - from: ghcr.io
    to: [lacks.mirror.test/ghcr, has.mirror.test/ghcr]
`

// BenchmarkReviewChecked is BenchmarkReview with availability checking on
// and every answer cached (the steady state of a busy cluster): the first
// mirror of each chain lacks the image, the second has it. Compare it with
// the same chains and checking off to see what checking costs on the hot
// path (hack/load/run-check.sh measures the same through HTTP and TLS).
func BenchmarkReviewChecked(b *testing.B) {
	body := loadBody(b)
	cache := map[string]bool{}
	for _, img := range []string{"library/busybox:1.36", "envoyproxy/envoy:v1.30.1"} {
		cache["lacks.mirror.test/hub/"+img] = false
		cache["has.mirror.test/hub/"+img] = true
	}
	cache["lacks.mirror.test/ghcr/acme/shop-api:v2.14.1"] = false
	cache["has.mirror.test/ghcr/acme/shop-api:v2.14.1"] = true
	for _, bc := range []struct {
		name    string
		checker Checker
	}{
		{"off", nil},
		{"on-cached", &cachingChecker{fakeChecker: &fakeChecker{}, cache: cache}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := policyOf(b, parseConfig(b, benchChainConfig))
			p.Checker = bc.checker
			if bc.checker == nil {
				p.Check.Enabled = false
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			measureCPU(b)
			for b.Loop() {
				res, err := Review(context.Background(), body, p)
				if err != nil || res.Outcome != Patched || len(res.Warnings) != 0 {
					b.Fatalf("Review: %v, outcome %v, warnings %v", err, res.Outcome, res.Warnings)
				}
			}
		})
	}
}
