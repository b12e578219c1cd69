package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/tools/cache"

	"github.com/detourhq/detour/internal/kube"
)

// ConfigMapKey is the key of the ConfigMap that holds the config file.
const ConfigMapKey = "config.yaml"

const (
	// configMapResync re-delivers the ConfigMap this often even without a
	// change; a config refused because of something outside it (none today)
	// would be retried, and a lost watch event is made up for.
	configMapResync = 5 * time.Minute
	// eventTimeout bounds the creation of one Event.
	eventTimeout = 10 * time.Second
	// maxEventMessage is the apiserver's limit on an Event's message.
	maxEventMessage = 1024
)

// ConfigMapSource names the source of a config read from a ConfigMap, as it
// appears in error lines: "configmap NAMESPACE/NAME:LINE: message".
func ConfigMapSource(namespace, name string) string {
	return "configmap " + namespace + "/" + name
}

// WatchConfigMap applies the config held under ConfigMapKey in the
// ConfigMap namespace/name to store now and on every change, until ctx is
// done. A refused config is also reported as a Warning Event on the
// ConfigMap (best effort: a failure to create it is logged). A ConfigMap
// that is deleted, or loses its key, leaves the last good config in use.
func WatchConfigMap(ctx context.Context, client *kube.Client, namespace, name string, store *Store, log *slog.Logger) {
	log = orDiscard(log)
	var reports sync.WaitGroup // Events being created
	defer reports.Wait()
	source := ConfigMapSource(namespace, name)
	missingReported := "" // resourceVersion of a ConfigMap without the key, reported once
	apply := func(obj any) {
		cm, ok := obj.(*corev1.ConfigMap)
		if !ok {
			return
		}
		data, ok := cm.Data[ConfigMapKey]
		if !ok {
			if missingReported == cm.ResourceVersion {
				return
			}
			missingReported = cm.ResourceVersion
			err := fmt.Errorf("%s has no key %s; keeping the config in use", source, ConfigMapKey)
			log.Error("config refused", slog.String("source", source), slog.Any("errors", []string{err.Error()}))
			if store.metrics != nil {
				store.metrics.reloads.WithLabelValues(reloadFailure).Inc()
			}
			reports.Go(func() { reportInvalid(ctx, client, cm, err.Error(), log) })
			return
		}
		err := store.Apply([]byte(data), source)
		if err == nil || errors.Is(err, ErrUnchanged) {
			return
		}
		reports.Go(func() { reportInvalid(ctx, client, cm, strings.Join(errorLines(err), "\n"), log) })
	}
	lw := cache.NewListWatchFromClient(client.Core(), "configmaps", namespace, fields.OneTermEqualSelector("metadata.name", name))
	_, controller := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: lw,
		ObjectType:    &corev1.ConfigMap{},
		ResyncPeriod:  configMapResync,
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    apply,
			UpdateFunc: func(_, obj any) { apply(obj) },
			DeleteFunc: func(any) {
				log.Warn("config ConfigMap deleted; keeping the config in use", slog.String("source", source))
			},
		},
	})
	controller.RunWithContext(ctx)
}

// reportInvalid creates a Warning Event about a refused config on its
// ConfigMap, so `kubectl describe configmap` shows why.
func reportInvalid(ctx context.Context, client *kube.Client, cm *corev1.ConfigMap, msg string, log *slog.Logger) {
	if len(msg) > maxEventMessage {
		msg = msg[:maxEventMessage-len("…")] + "…"
	}
	now := metav1.NewTime(time.Now())
	host, _ := os.Hostname()
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			// The name scheme of client-go's event recorder.
			Name:      fmt.Sprintf("%s.%x", cm.Name, now.UnixNano()),
			Namespace: cm.Namespace,
		},
		InvolvedObject: corev1.ObjectReference{
			APIVersion:      "v1",
			Kind:            "ConfigMap",
			Namespace:       cm.Namespace,
			Name:            cm.Name,
			UID:             cm.UID,
			ResourceVersion: cm.ResourceVersion,
		},
		Reason:              "InvalidConfig",
		Message:             msg,
		Type:                corev1.EventTypeWarning,
		Source:              corev1.EventSource{Component: "detour", Host: host},
		FirstTimestamp:      now,
		LastTimestamp:       now,
		Count:               1,
		ReportingController: "detour.dev/webhook",
		ReportingInstance:   host,
	}
	ctx, cancel := context.WithTimeout(ctx, eventTimeout)
	defer cancel()
	_, err := client.CreateEvent(ctx, ev)
	if err != nil {
		log.Warn("could not record an Event for a refused config", slog.String("configmap", cm.Namespace+"/"+cm.Name), slog.Any("error", err))
	}
}
