package imagesync_test

import (
	"testing"

	"github.com/detourhq/detour/internal/admission"
	"github.com/detourhq/detour/internal/imagesync"
)

// The webhook writes the annotation that --from-cluster reads.
func TestAnnotationIsTheWebhooks(t *testing.T) {
	t.Parallel()
	if imagesync.OriginalImagesAnnotation != admission.OriginalImagesAnnotation {
		t.Errorf("imagesync reads %q, the webhook writes %q", imagesync.OriginalImagesAnnotation, admission.OriginalImagesAnnotation)
	}
}
