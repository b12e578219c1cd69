//go:build e2e

package e2e

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// selfCheckPrefix is what the self-check webhook puts in front of the first image.
const selfCheckPrefix = "selfcheck.e2e.test/"

// TestHarnessApiserverCallsWebhook is the harness's own check, independent of detour: an
// in-test HTTPS webhook with a certificate from the harness CA is registered through
// registerWebhook, and the apiserver must call it over TLS, store its JSONPatch, and refuse
// Pods once it is gone (failurePolicy Fail). If this fails, no detour test result means
// anything.
func TestHarnessApiserverCallsWebhook(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []admissionv1.AdmissionRequest
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review admissionv1.AdmissionReview
		body, err := io.ReadAll(io.LimitReader(r.Body, 3<<20))
		if err == nil {
			err = json.Unmarshal(body, &review)
		}
		if err != nil || review.Request == nil || r.URL.Path != "/mutate" {
			http.Error(w, "not an AdmissionReview request to /mutate", http.StatusBadRequest)
			return
		}
		mu.Lock()
		seen = append(seen, *review.Request)
		mu.Unlock()

		var pod corev1.Pod
		if err := json.Unmarshal(review.Request.Object.Raw, &pod); err != nil {
			http.Error(w, "object is not a Pod: "+err.Error(), http.StatusBadRequest)
			return
		}
		patch, _ := json.Marshal([]map[string]string{{
			"op":    "replace",
			"path":  "/spec/containers/0/image",
			"value": selfCheckPrefix + pod.Spec.Containers[0].Image,
		}})
		patchType := admissionv1.PatchTypeJSONPatch
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(admissionv1.AdmissionReview{
			TypeMeta: review.TypeMeta, // the apiserver wants its own apiVersion back
			Response: &admissionv1.AdmissionResponse{
				UID:       review.Request.UID,
				Allowed:   true,
				Patch:     patch,
				PatchType: &patchType,
			},
		})
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cluster.webhookTLS}}
	srv.StartTLS()
	defer srv.Close()

	w := registerWebhook(t, srv.URL+"/mutate", cluster.ca.certPEM, admissionregistrationv1.Fail, probe{
		image: "busybox:1.36",
		want:  selfCheckPrefix + "busybox:1.36",
	})

	ns := newNamespace(t, "selfcheck-")
	createPod(t, ns, w.pod("web", ctr("web", "nginx:1.25")))
	if got, want := getPod(t, ns, "web").Spec.Containers[0].Image, selfCheckPrefix+"nginx:1.25"; got != want {
		t.Errorf("stored image = %q, want %q", got, want)
	}
	mu.Lock()
	var create *admissionv1.AdmissionRequest
	for i, r := range seen {
		if r.Namespace == ns && r.Name == "web" {
			create = &seen[i]
		}
	}
	mu.Unlock()
	switch {
	case create == nil:
		t.Errorf("the webhook saw no request for Pod %s/web", ns)
	case create.Operation != admissionv1.Create || create.Kind.Kind != "Pod" || create.DryRun == nil || *create.DryRun:
		t.Errorf("request for Pod %s/web: operation %s, kind %s, dryRun %v; want a CREATE of a Pod, not a dry run",
			ns, create.Operation, create.Kind.Kind, create.DryRun)
	}

	// The detour tests for failurePolicy rely on this error.
	srv.Close()
	_, err := cluster.client.CoreV1().Pods(ns).Create(t.Context(), w.pod("refused", ctr("web", "nginx:1.25")), metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "failed calling webhook") {
		t.Errorf("creating a Pod with the webhook stopped and failurePolicy Fail: err = %v, want one mentioning \"failed calling webhook\"", err)
	}
}
