package webhook

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the webhook's Prometheus metrics. They are registered on the
// registry given to NewMetrics, never on the global one.
type Metrics struct {
	// byRule holds the detour_images_rewritten_total counter of each rule
	// seen (string -> prometheus.Counter): looking a labelled child up in the
	// vector hashes its labels on every request.
	byRule sync.Map
	// byRequest holds the detour_admission_requests_total counters of the
	// common operations and results, for the same reason.
	byRequest  [len(commonOps)][len(commonResults)]prometheus.Counter
	requests   *prometheus.CounterVec
	duration   prometheus.Histogram
	rewritten  *prometheus.CounterVec
	reloads    *prometheus.CounterVec
	generation prometheus.Gauge
}

// Values of the result label of detour_admission_requests_total, besides
// the admission outcomes (patched, unchanged, skipped).
const (
	resultBadRequest = "bad_request" // answered 400
	resultError      = "error"       // answered 5xx: no config yet, or a recovered panic
)

// Values of the result label of detour_config_reloads_total.
const (
	reloadSuccess = "success"
	reloadFailure = "failure"
)

// durationBuckets cover the webhook's range: tens of microseconds for a
// review without availability checks, up to the default 3 s check budget.
var durationBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// NewMetrics creates the metrics and registers them on reg. certs, when not
// nil, backs detour_certificate_expiry_timestamp_seconds.
func NewMetrics(reg prometheus.Registerer, certs CertSource) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "detour_admission_requests_total",
			Help: "Admission requests answered, by operation (CREATE, UPDATE, other, unknown) and result (patched, unchanged, skipped, bad_request, error).",
		}, []string{"operation", "result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "detour_admission_duration_seconds",
			Help:    "Time to answer an admission request, from its body read to its answer written.",
			Buckets: durationBuckets,
		}),
		rewritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "detour_images_rewritten_total",
			Help: "Images replaced in Pods, by the from of the rule that matched (\"escape\" for the escape prefix).",
		}, []string{"rule"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "detour_config_reloads_total",
			Help: "Configs loaded (success) or refused (failure), the first one included.",
		}, []string{"result"}),
		generation: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "detour_config_generation",
			Help: "Generation of the config in use: 1 for the first, one more for each accepted change.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.rewritten, m.reloads, m.generation)
	for i, op := range commonOps {
		for j, result := range commonResults {
			m.byRequest[i][j] = m.requests.WithLabelValues(op, result)
		}
	}
	for _, r := range []string{reloadSuccess, reloadFailure} {
		m.reloads.WithLabelValues(r)
	}
	if certs != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "detour_certificate_expiry_timestamp_seconds",
			Help: "When the serving certificate in use expires, in seconds since the Unix epoch (0 while none is loaded).",
		}, func() float64 {
			t := certs.Expiry()
			if t.IsZero() {
				return 0
			}
			return float64(t.Unix())
		}))
	}
	return m
}

// operationLabel bounds the operation label: the value comes from the
// request, and a label must not take whatever a client sends.
func operationLabel(op string) string {
	switch op {
	case "CREATE", "UPDATE", "DELETE", "CONNECT":
		return op
	case "":
		return "unknown"
	}
	return "other"
}

// ruleRewritten is the counter of images rewritten by rule.
func (m *Metrics) ruleRewritten(rule string) prometheus.Counter {
	if c, ok := m.byRule.Load(rule); ok {
		return c.(prometheus.Counter)
	}
	c := m.rewritten.WithLabelValues(rule)
	m.byRule.Store(rule, c)
	return c
}

var (
	commonOps     = [...]string{"CREATE", "UPDATE"}
	commonResults = [...]string{"patched", "unchanged", "skipped"}
)

// requestAnswered is the counter of requests by operation and result.
func (m *Metrics) requestAnswered(op, result string) prometheus.Counter {
	for i, o := range commonOps {
		if o == op {
			for j, r := range commonResults {
				if r == result {
					return m.byRequest[i][j]
				}
			}
		}
	}
	return m.requests.WithLabelValues(op, result)
}
