package rules_test

import (
	"testing"

	"github.com/detourhq/detour/internal/config"
)

// BenchmarkRewrite measures the admission hot path for one image on the
// embedded default config.
func BenchmarkRewrite(b *testing.B) {
	set, err := config.Default().Compile()
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, image string }{
		{"rewritten/short", "nginx:1.25"},
		{"rewritten/registry", "registry.k8s.io/ingress-nginx/controller:v1.8.2"},
		{"rewritten/digest", "quay.io/prometheus/node-exporter:v1.7.0@" + digest},
		{"nomatch/private", "harbor.corp.example/team/app:1.0"},
		{"nomatch/localhost", "localhost:5000/app"},
		{"already-mirrored", "docker.m.daocloud.io/library/nginx:1.25"},
		{"escaped", "direct.to/busybox:latest"},
		{"slow-path/ipv6", "[::1]:5000/app:1"},
		{"invalid", "NGINX"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = set.Rewrite(bc.image)
			}
		})
	}
}
