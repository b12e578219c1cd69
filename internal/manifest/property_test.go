package manifest_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/detourhq/detour/internal/manifest"
	"github.com/detourhq/detour/internal/rules"
)

// imagePool mixes images every kind of decision applies to.
var imagePool = []string{
	"nginx", "nginx:1.25", "library/redis:7", "bitnami/redis:7.2",
	"registry.k8s.io/pause:3.9", "k8s.gcr.io/coredns:1.3.1", "quay.io/prometheus/node-exporter:v1.7.0",
	"gcr.io/distroless/static@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	"ghcr.io/a/b:1", "index.docker.io/library/busybox", "Docker.IO/alpine",
	"localhost:5000/app:1", "registry.corp.example/team/app", // no rule
	"docker.m.daocloud.io/library/nginx", "quay.mirror.corp/a/b", // already mirrored
	"Not A Reference", "nginx:", // invalid
	"direct.to/busybox:latest", "direct.to/gcr.io/google_containers/pause-amd64:3.0", // escaped
}

var kindShapes = []struct {
	kind, api string
	spec      []string
}{
	{"Pod", "v1", []string{"spec"}},
	{"PodTemplate", "v1", []string{"template", "spec"}},
	{"ReplicationController", "v1", []string{"spec", "template", "spec"}},
	{"Deployment", "apps/v1", []string{"spec", "template", "spec"}},
	{"StatefulSet", "apps/v1", []string{"spec", "template", "spec"}},
	{"DaemonSet", "apps/v1", []string{"spec", "template", "spec"}},
	{"ReplicaSet", "apps/v1", []string{"spec", "template", "spec"}},
	{"Job", "batch/v1", []string{"spec", "template", "spec"}},
	{"CronJob", "batch/v1", []string{"spec", "jobTemplate", "spec", "template", "spec"}},
}

// genManifest writes a random multi-document stream and returns the images
// it holds, in order.
func genManifest(r *rand.Rand) (string, []string) {
	var b strings.Builder
	var images []string
	ndocs := 1 + r.IntN(4)
	for d := 0; d < ndocs; d++ {
		if d > 0 || r.IntN(2) == 0 {
			b.WriteString("---\n")
		}
		if r.IntN(3) == 0 {
			b.WriteString("# a comment before the object\n")
		}
		shape := kindShapes[r.IntN(len(kindShapes))]
		fmt.Fprintf(&b, "apiVersion: %s\nkind: %s\nmetadata:\n  name: obj-%d\n", shape.api, shape.kind, d)
		for i, key := range shape.spec {
			fmt.Fprintf(&b, "%s%s:\n", strings.Repeat("  ", i), key)
		}
		indent := strings.Repeat("  ", len(shape.spec))
		for _, list := range []string{"initContainers", "containers", "ephemeralContainers"} {
			if list != "containers" && r.IntN(2) == 0 {
				continue
			}
			fmt.Fprintf(&b, "%s%s:\n", indent, list)
			for c := 0; c < 1+r.IntN(3); c++ {
				img := imagePool[r.IntN(len(imagePool))]
				images = append(images, img)
				var val string
				switch r.IntN(3) {
				case 0:
					val = img
					if strings.Contains(img, " ") || strings.HasSuffix(img, ":") {
						val = "'" + img + "'"
					}
				case 1:
					val = "'" + img + "'"
				default:
					val = `"` + img + `"`
				}
				comment := ""
				if r.IntN(3) == 0 {
					comment = "   # pinned"
				}
				if r.IntN(4) == 0 {
					fmt.Fprintf(&b, "%s- {name: c%d, image: %s}%s\n", indent, c, val, comment)
				} else {
					fmt.Fprintf(&b, "%s- name: c%d\n%s  image: %s%s\n", indent, c, indent, val, comment)
				}
			}
		}
	}
	if r.IntN(2) == 0 {
		b.WriteString("\n\n")
	}
	return b.String(), images
}

// TestPropertyRewrite: on random streams, every image decides as
// rules.Set.Rewrite decides it, and a second pass changes nothing except
// what the first pass un-escaped.
func TestPropertyRewrite(t *testing.T) {
	set := testSet(t)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 500; i++ {
		in, images := genManifest(r)
		out, changes, err := manifest.Rewrite([]byte(in), set)
		if err != nil {
			t.Fatalf("case %d: %v\n%s", i, err, in)
		}
		wantChanges := 0
		for _, img := range images {
			if set.Rewrite(img).Changed() {
				wantChanges++
			}
		}
		if len(changes) != wantChanges {
			t.Fatalf("case %d: %d changes, want %d\n%s\n%v", i, len(changes), wantChanges, in, changes)
		}
		escaped := map[string]bool{}
		for _, c := range changes {
			d := set.Rewrite(c.From)
			if c.To != d.Image {
				t.Fatalf("case %d: %s: got %q, rules say %q", i, c.Path, c.To, d.Image)
			}
			if d.Reason == rules.Escaped {
				escaped[fmt.Sprint(c.Doc, c.Path)] = true
			}
		}
		assertOnlyImageLinesDiffer(t, []byte(in), out, changes)
		out2, changes2, err := manifest.Rewrite(out, set)
		if err != nil {
			t.Fatalf("case %d: second pass: %v", i, err)
		}
		for _, c := range changes2 {
			if !escaped[fmt.Sprint(c.Doc, c.Path)] {
				t.Fatalf("case %d: the second pass changed %s, which the first did not un-escape: %v", i, c.Path, c)
			}
		}
		if len(escaped) == 0 && string(out2) != string(out) {
			t.Fatalf("case %d: second pass changed the output", i)
		}
	}
}
