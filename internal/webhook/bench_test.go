package webhook

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/detourhq/detour/internal/jsonlog"
)

// BenchmarkHandler is /mutate without the network: HTTP checks, body read,
// review, metrics and the log line, with the load test's body.
func BenchmarkHandler(b *testing.B) {
	body, err := os.ReadFile("../../hack/load/body.json")
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		log  *slog.Logger
	}{
		{"json-log", slog.New(jsonlog.New(io.Discard, nil))},
		{"no-log", nil},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m := NewMetrics(prometheus.NewRegistry(), nil)
			h := NewHandler(defaultStore(b, m), m, bc.log)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			start := cpuTime()
			for b.Loop() {
				r := httptest.NewRequest(http.MethodPost, "/mutate", bytes.NewReader(body))
				r.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatal(w.Code)
				}
			}
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		})
	}
}
