package kube

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
)

// TestClientWithARealAPIServer runs against the kube-apiserver of the kubeconfig in
// DETOUR_TEST_KUBECONFIG (for instance one started as notes/real-kubernetes.md says); without
// it the test is skipped. test/e2e exercises every caller of this package as a whole.
func TestClientWithARealAPIServer(t *testing.T) {
	kubeconfig := os.Getenv("DETOUR_TEST_KUBECONFIG")
	if kubeconfig == "" {
		t.Skip("DETOUR_TEST_KUBECONFIG is not set: no apiserver to talk to")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns := fmt.Sprintf("detour-kube-%d", time.Now().UnixNano())
	must(t, c.Core().Post().Resource("namespaces").Body(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}).Do(ctx).Error())
	t.Cleanup(func() { _ = c.Core().Delete().Resource("namespaces").Name(ns).Do(context.Background()).Error() })

	// Secrets: NotFound, create, AlreadyExists, update, Conflict on a stale resourceVersion.
	if _, err := c.GetSecret(ctx, ns, "s"); !apierrors.IsNotFound(err) {
		t.Fatalf("GetSecret of a missing Secret: %v, want NotFound", err)
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: ns}, Data: map[string][]byte{"k": []byte("v1")}}
	created, err := c.CreateSecret(ctx, s, "detour-test")
	must(t, err)
	if created.ResourceVersion == "" || string(created.Data["k"]) != "v1" {
		t.Fatalf("created Secret %+v", created)
	}
	if got := created.ManagedFields; len(got) != 1 || got[0].Manager != "detour-test" {
		t.Errorf("managedFields %+v, want one entry by detour-test", got)
	}
	if _, err := c.CreateSecret(ctx, s, "detour-test"); !apierrors.IsAlreadyExists(err) {
		t.Errorf("second CreateSecret: %v, want AlreadyExists", err)
	}
	upd := created.DeepCopy()
	upd.Data["k"] = []byte("v2")
	updated, err := c.UpdateSecret(ctx, upd, "detour-test")
	must(t, err)
	if updated.ResourceVersion == created.ResourceVersion {
		t.Errorf("update kept resourceVersion %s", updated.ResourceVersion)
	}
	if _, err := c.UpdateSecret(ctx, upd, "detour-test"); !apierrors.IsConflict(err) { // upd still has the old version
		t.Errorf("UpdateSecret with a stale resourceVersion: %v, want Conflict", err)
	}
	got, err := c.GetSecret(ctx, ns, "s")
	must(t, err)
	if string(got.Data["k"]) != "v2" {
		t.Errorf("Secret data %q, want v2", got.Data["k"])
	}

	// Events.
	ev, err := c.CreateEvent(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "e", Namespace: ns},
		InvolvedObject: corev1.ObjectReference{Kind: "Secret", Namespace: ns, Name: "s"},
		Reason:         "Test", Message: "hello", Type: corev1.EventTypeNormal,
	})
	must(t, err)
	if ev.Message != "hello" || ev.UID == "" {
		t.Errorf("created Event %+v", ev)
	}

	// Pods, in pages.
	for i := range 3 {
		must(t, c.Core().Post().Namespace(ns).Resource("pods").Body(&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i), Namespace: ns},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.test/app:1"}}},
		}).Do(ctx).Error())
	}
	var names []string
	opts := metav1.ListOptions{Limit: 2}
	pages := 0
	for {
		list, err := c.ListPods(ctx, ns, opts)
		must(t, err)
		pages++
		for _, p := range list.Items {
			names = append(names, p.Name)
		}
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
	}
	if fmt.Sprint(names) != "[p0 p1 p2]" || pages != 2 {
		t.Errorf("listed %v in %d pages, want [p0 p1 p2] in 2", names, pages)
	}

	// MutatingWebhookConfigurations: a strategic merge patch conditional on resourceVersion.
	name := ns
	none := admissionregistrationv1.SideEffectClassNone
	url := "https://127.0.0.1:1/mutate"
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "a.detour.test",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url},
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"no": "such-namespace"}},
		}},
	}
	admission := c.admission
	must(t, admission.Post().Resource("mutatingwebhookconfigurations").Body(mwc).Do(ctx).Error())
	t.Cleanup(func() {
		_ = admission.Delete().Resource("mutatingwebhookconfigurations").Name(name).Do(context.Background()).Error()
	})
	if _, err := c.GetMutatingWebhookConfiguration(ctx, name+"-missing"); !apierrors.IsNotFound(err) {
		t.Errorf("Get of a missing configuration: %v, want NotFound", err)
	}
	cur, err := c.GetMutatingWebhookConfiguration(ctx, name)
	must(t, err)
	patch := func(rv string) error {
		p := fmt.Sprintf(`{"metadata":{"resourceVersion":%q},"webhooks":[{"name":"a.detour.test","clientConfig":{"caBundle":"Y2E="}}]}`, rv)
		_, err := c.PatchMutatingWebhookConfiguration(ctx, name, types.StrategicMergePatchType, []byte(p), "detour-test")
		return err
	}
	must(t, patch(cur.ResourceVersion))
	if err := patch(cur.ResourceVersion); !apierrors.IsConflict(err) {
		t.Errorf("patch with a stale resourceVersion: %v, want Conflict", err)
	}
	after, err := c.GetMutatingWebhookConfiguration(ctx, name)
	must(t, err)
	if string(after.Webhooks[0].ClientConfig.CABundle) != "ca" || after.Webhooks[0].ClientConfig.URL == nil {
		t.Errorf("after the patch: %+v, want caBundle \"ca\" and the URL kept", after.Webhooks[0].ClientConfig)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
