package registry

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkCheckerHasWarm is the admission hot path with checks on: every
// image already in the cache.
//
//	go test -run '^$' -bench CheckerHasWarm -benchtime 1s -count 3 ./internal/registry
func BenchmarkCheckerHasWarm(b *testing.B) {
	reg := newMemRegistry(b)
	push(b, reg.Host, "app:1")
	client := newTestClient(b, ClientOptions{})
	ctx := context.Background()
	img := reg.Host + "/app:1"
	m, err := NewPrometheus(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name    string
		metrics Metrics
	}{{"no-metrics", nil}, {"prometheus", m}} {
		c := newTestChecker(b, client, CheckerOptions{Metrics: bc.metrics})
		if has, err := c.Has(ctx, img); !has || err != nil {
			b.Fatal(has, err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if has, err := c.Has(ctx, img); !has || err != nil {
					b.Fatal(has, err)
				}
			}
		})
		b.Run(bc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if has, err := c.Has(ctx, img); !has || err != nil {
						b.Error(has, err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkFirstAvailableWarm chooses from a two-mirror chain whose first
// mirror lacks the image, all answers cached.
func BenchmarkFirstAvailableWarm(b *testing.B) {
	has, lacks := newMemRegistry(b), newMemRegistry(b)
	push(b, has.Host, "app:1")
	c := newTestChecker(b, newTestClient(b, ClientOptions{}), CheckerOptions{})
	chain := []string{lacks.Host + "/app:1", has.Host + "/app:1"}
	ctx := context.Background()
	if i, err := FirstAvailable(ctx, c, chain); i != 1 || err != nil {
		b.Fatal(i, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if i, err := FirstAvailable(ctx, c, chain); i != 1 {
			b.Fatal(i, err)
		}
	}
}
