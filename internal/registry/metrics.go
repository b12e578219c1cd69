package registry

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Prometheus is a Metrics that keeps detour_mirror_checks_total and
// detour_mirror_up.
type Prometheus struct {
	checks *prometheus.CounterVec
	up     *prometheus.GaugeVec

	// byRegistry caches the counters of each registry (string ->
	// *[numResults]prometheus.Counter), so that counting a check hashes no
	// labels, allocates nothing and, being a sync.Map, writes no shared
	// memory: every cached availability answer is counted.
	byRegistry sync.Map
	mu         sync.Mutex // creates the counters of a registry once
}

var (
	_ Metrics      = (*Prometheus)(nil)
	_ CheckCounter = (*Prometheus)(nil)
)

// NewPrometheus makes the collectors and registers them on reg:
//
//	detour_mirror_checks_total{mirror,result}  counter; result is hit, miss, error, down or cached
//	detour_mirror_up{mirror}                   gauge; 0 while the mirror is marked down
//
// mirror is the registry host. Registering twice on one registerer fails.
func NewPrometheus(reg prometheus.Registerer) (*Prometheus, error) {
	p := &Prometheus{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "detour_mirror_checks_total",
			Help: "Availability checks of images on mirrors, by mirror and result (hit, miss, error, down, cached).",
		}, []string{"mirror", "result"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "detour_mirror_up",
			Help: "1 when the mirror is usable, 0 while it is marked down after repeated failures.",
		}, []string{"mirror"}),
	}
	for _, c := range []prometheus.Collector{p.checks, p.up} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering mirror metrics: %w", err)
		}
	}
	return p, nil
}

// Check implements Metrics.
func (p *Prometheus) Check(registry string, r Result) {
	if r >= numResults {
		return
	}
	if cs, ok := p.byRegistry.Load(registry); ok {
		cs.(*[numResults]prometheus.Counter)[r].Inc()
		return
	}
	p.counters(registry)[r].Inc()
}

func (p *Prometheus) counters(registry string) *[numResults]prometheus.Counter {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cs, ok := p.byRegistry.Load(registry); ok {
		return cs.(*[numResults]prometheus.Counter)
	}
	cs := new([numResults]prometheus.Counter)
	for r := range numResults {
		cs[r] = p.checks.WithLabelValues(registry, r.String())
	}
	p.byRegistry.Store(registry, cs)
	return cs
}

// Up implements Metrics.
func (p *Prometheus) Up(registry string, up bool) {
	v := 0.0
	if up {
		v = 1
	}
	p.up.WithLabelValues(registry).Set(v)
}

// CheckCounter implements CheckCounter.
func (p *Prometheus) CheckCounter(registry string, r Result) func() {
	if r >= numResults {
		return func() {}
	}
	return p.counters(registry)[r].Inc
}
