package imagesync

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/detourhq/detour/internal/kube"
)

// OriginalImagesAnnotation is the Pod annotation in which the webhook
// records the images it replaced (SPEC §4): a JSON object of
// "containers/NAME" (or initContainers/, ephemeralContainers/) to image.
const OriginalImagesAnnotation = "detour.dev/original-images"

// podPageSize bounds one List call; a cluster's Pods come in pages so a big
// cluster does not cost one huge answer.
const podPageSize = 500

// ParseOriginalImages parses the value of OriginalImagesAnnotation into
// container key -> image. Every image must be a valid reference.
func ParseOriginalImages(v string) (map[string]string, error) {
	var m map[string]string
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return nil, fmt.Errorf("annotation %s: not a JSON object of strings: %w", OriginalImagesAnnotation, err)
	}
	if m == nil {
		return nil, fmt.Errorf("annotation %s: null, not a JSON object", OriginalImagesAnnotation)
	}
	for k, img := range m {
		if err := ValidateReference(img); err != nil {
			return nil, fmt.Errorf("annotation %s: %q: image %q: %w", OriginalImagesAnnotation, k, img, err)
		}
	}
	return m, nil
}

// ImagesFromPods returns the distinct original images recorded on pods,
// sorted. A Pod whose annotation does not parse is reported in warnings
// (one per Pod) and otherwise ignored.
func ImagesFromPods(pods []corev1.Pod) (entries []Entry, warnings []error) {
	seen := map[string]bool{}
	for i := range pods {
		p := &pods[i]
		v, ok := p.Annotations[OriginalImagesAnnotation]
		if !ok {
			continue
		}
		m, err := ParseOriginalImages(v)
		if err != nil {
			warnings = append(warnings, fmt.Errorf("pod %s/%s: %w", p.Namespace, p.Name, err))
			continue
		}
		for _, img := range m {
			if !seen[img] {
				seen[img] = true
				entries = append(entries, Entry{Image: img})
			}
		}
	}
	sort.Slice(entries, func(a, b int) bool { return entries[a].Image < entries[b].Image })
	return entries, warnings
}

// ClusterImages lists the Pods of all namespaces and returns the original
// images the webhook recorded on them (see ImagesFromPods).
func ClusterImages(ctx context.Context, cfg *rest.Config) ([]Entry, []error, error) {
	client, err := kube.New(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes client for %s: %w", cfg.Host, err)
	}
	var pods []corev1.Pod
	opts := metav1.ListOptions{Limit: podPageSize}
	for {
		list, err := client.ListPods(ctx, metav1.NamespaceAll, opts)
		if err != nil {
			return nil, nil, fmt.Errorf("listing pods at %s: %w", cfg.Host, err)
		}
		pods = append(pods, list.Items...)
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
	}
	entries, warnings := ImagesFromPods(pods)
	return entries, warnings, nil
}
