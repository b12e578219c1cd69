package webhook

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/detourhq/detour/internal/kube"
)

// TestWatchConfigMapWithARealAPIServer runs against the kube-apiserver of
// the kubeconfig in DETOUR_TEST_KUBECONFIG (for instance one started as
// notes/real-kubernetes.md says); without it the test is skipped. The
// end-to-end suite (test/e2e) covers `detour serve --configmap` as a whole.
func TestWatchConfigMapWithARealAPIServer(t *testing.T) {
	kubeconfig := os.Getenv("DETOUR_TEST_KUBECONFIG")
	if kubeconfig == "" {
		t.Skip("DETOUR_TEST_KUBECONFIG is not set: no apiserver to watch a ConfigMap on")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kube.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client := kc.Core()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	ns := fmt.Sprintf("detour-cm-%d", time.Now().UnixNano())
	must(t, client.Post().Resource("namespaces").Body(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}).Do(ctx).Error())
	t.Cleanup(func() {
		_ = client.Delete().Resource("namespaces").Name(ns).Do(context.Background()).Error()
	})
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "detour", Namespace: ns},
		Data:       map[string]string{ConfigMapKey: string(mirrorConfig("one.mirror.test"))},
	}
	must(t, client.Post().Namespace(ns).Resource("configmaps").Body(cm).Do(ctx).Into(cm))

	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, nil)
	store := NewStore(StoreOptions{Metrics: m})
	var wg sync.WaitGroup
	wg.Go(func() { WatchConfigMap(ctx, kc, ns, "detour", store, nil) })
	defer wg.Wait()
	defer cancel()

	eventually(t, "on the ConfigMap's config", func() bool { return store.Load() != nil && mirrorOf(store) == "one.mirror.test" })
	if got := store.Load().Source; got != "configmap "+ns+"/detour" {
		t.Errorf("source %q", got)
	}

	update := func(data string) {
		t.Helper()
		cm.Data[ConfigMapKey] = data
		must(t, client.Put().Namespace(ns).Resource("configmaps").Name("detour").Body(cm).Do(ctx).Into(cm))
	}
	update(string(mirrorConfig("two.mirror.test")))
	eventually(t, "on the updated config", func() bool { return mirrorOf(store) == "two.mirror.test" })

	// An invalid config: refused, counted, reported as an Event on the
	// ConfigMap; the last good config stays.
	update(string(mirrorConfig("three.mirror.test")) + "notAKey: true\n")
	var events corev1.EventList
	eventually(t, "reporting the invalid config in an Event", func() bool {
		must(t, client.Get().Namespace(ns).Resource("events").Do(ctx).Into(&events))
		return len(events.Items) > 0
	})
	ev := events.Items[0]
	if ev.Reason != "InvalidConfig" || ev.Type != corev1.EventTypeWarning || ev.InvolvedObject.Name != "detour" || ev.InvolvedObject.UID != cm.UID ||
		!strings.Contains(ev.Message, "configmap "+ns+"/detour:5: unknown key \"notAKey\"") {
		t.Errorf("event %s %s on %s/%s: %q", ev.Type, ev.Reason, ev.InvolvedObject.Kind, ev.InvolvedObject.Name, ev.Message)
	}
	if got := testutil.ToFloat64(m.reloads.WithLabelValues(reloadFailure)); got != 1 {
		t.Errorf("failures counted %v, want 1", got)
	}
	if got := mirrorOf(store); got != "two.mirror.test" {
		t.Errorf("after an invalid config, mirror %q, want the last good two.mirror.test", got)
	}

	// Deleted: the last good config stays.
	must(t, client.Delete().Namespace(ns).Resource("configmaps").Name("detour").Do(ctx).Error())
	update2 := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "detour", Namespace: ns}, Data: map[string]string{ConfigMapKey: string(mirrorConfig("four.mirror.test"))}}
	must(t, client.Post().Namespace(ns).Resource("configmaps").Body(update2).Do(ctx).Error())
	eventually(t, "on the recreated ConfigMap's config", func() bool { return mirrorOf(store) == "four.mirror.test" })
	if g := store.Load().Generation; g != 3 {
		t.Errorf("generation %d, want 3", g)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
