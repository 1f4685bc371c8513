// Package metrics keeps edge's counters and histograms in a form the request
// path can update with a few atomic adds (no label hashing, no locks, no
// allocations), and renders them as Prometheus metrics at scrape time through
// a prometheus.Collector.
//
// Callers resolve a labelled series once, off the hot path (when a route table
// or pool is built), keep the returned *Counter or *Histogram, and update it
// per request. Series live as long as the Registry, so counters survive config
// reloads that rebuild the objects holding them.
package metrics

import (
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Counter is a monotonically increasing count. The zero value is ready to use.
// It is safe for concurrent use.
type Counter struct {
	n atomic.Uint64
}

// Inc adds one.
func (c *Counter) Inc() { c.n.Add(1) }

// Add adds n.
func (c *Counter) Add(n uint64) { c.n.Add(n) }

// Value returns the current count.
func (c *Counter) Value() uint64 { return c.n.Load() }

// DurationBuckets are the upper bounds, in seconds, of request-duration
// histograms: from half a millisecond (a local hop) to ten seconds.
var DurationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Histogram counts observations into fixed buckets. It is safe for
// concurrent use; Observe allocates nothing.
type Histogram struct {
	bounds []int64 // upper bounds in nanoseconds, ascending
	counts []atomic.Uint64
	sumNS  atomic.Int64
	count  atomic.Uint64
}

func newHistogram(buckets []float64) *Histogram {
	h := &Histogram{bounds: make([]int64, len(buckets)), counts: make([]atomic.Uint64, len(buckets))}
	for i, b := range buckets {
		h.bounds[i] = int64(b * 1e9)
	}
	return h
}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	ns := int64(d)
	for i, b := range h.bounds {
		if ns <= b {
			h.counts[i].Add(1)
			break
		}
	}
	h.sumNS.Add(ns)
	h.count.Add(1)
}

// Count returns how many durations were observed.
func (h *Histogram) Count() uint64 { return h.count.Load() }

type kind uint8

const (
	kindCounter kind = iota
	kindHistogram
	kindGauge
	kindCounterFunc
)

// family is one metric name with its labelled series.
type family struct {
	name    string
	help    string
	desc    *prometheus.Desc
	kind    kind
	buckets []float64
	mu      sync.Mutex
	series  map[string]*series // key: label values joined by \xff
	order   []*series
	gauge   func(emit func(v float64, labelValues ...string))
}

type series struct {
	labels    []string
	counter   *Counter
	histogram *Histogram
}

// Registry is a set of metric families. It implements prometheus.Collector.
// Its methods are safe for concurrent use.
type Registry struct {
	mu       sync.Mutex
	families []*family
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

func (r *Registry) add(f *family) *family {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.families = append(r.families, f)
	return f
}

// CounterVec is a counter family; With resolves one series.
type CounterVec struct{ f *family }

// Counter defines a counter family with the given label names.
func (r *Registry) Counter(name, help string, labels ...string) *CounterVec {
	return &CounterVec{r.add(&family{name: name, help: help, desc: prometheus.NewDesc(name, help, labels, nil), kind: kindCounter, series: map[string]*series{}})}
}

// With returns the series for labelValues, creating it on first use. It
// takes a lock and allocates on first use: resolve series off the hot path.
func (v *CounterVec) With(labelValues ...string) *Counter {
	return v.f.get(labelValues).counter
}

// HistogramVec is a histogram family; With resolves one series.
type HistogramVec struct{ f *family }

// Histogram defines a histogram family with the given buckets (seconds).
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...string) *HistogramVec {
	return &HistogramVec{r.add(&family{name: name, help: help, desc: prometheus.NewDesc(name, help, labels, nil), kind: kindHistogram, buckets: buckets, series: map[string]*series{}})}
}

// With returns the series for labelValues, creating it on first use.
func (v *HistogramVec) With(labelValues ...string) *Histogram {
	return v.f.get(labelValues).histogram
}

// GaugeFunc defines a gauge family whose values are read at scrape time:
// fn calls emit once per series.
func (r *Registry) GaugeFunc(name, help string, fn func(emit func(v float64, labelValues ...string)), labels ...string) {
	r.add(&family{name: name, help: help, desc: prometheus.NewDesc(name, help, labels, nil), kind: kindGauge, gauge: fn})
}

// Family describes one metric family of a Registry.
type Family struct {
	Name string
	Help string
	// Type is the Prometheus type: counter, histogram or gauge.
	Type string
}

// Families lists the registry's families in the order they were defined,
// series or not. A Prometheus gatherer leaves out families without samples
// (a labelled counter before its first event); an exposition that must name
// every metric from start-up writes HELP and TYPE lines for those itself.
func (r *Registry) Families() []Family {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Family, len(r.families))
	for i, f := range r.families {
		typ := "counter"
		switch f.kind {
		case kindHistogram:
			typ = "histogram"
		case kindGauge:
			typ = "gauge"
		}
		out[i] = Family{Name: f.name, Help: f.help, Type: typ}
	}
	return out
}

func (f *family) get(labelValues []string) *series {
	key := strings.Join(labelValues, "\xff")
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.series[key]; ok {
		return s
	}
	s := &series{labels: slices.Clone(labelValues)}
	switch f.kind {
	case kindCounter:
		s.counter = &Counter{}
	case kindHistogram:
		s.histogram = newHistogram(f.buckets)
	}
	f.series[key] = s
	f.order = append(f.order, s)
	return s
}

// Describe implements prometheus.Collector. The registry is an unchecked
// collector: families are defined over its lifetime, not up front.
func (r *Registry) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (r *Registry) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	families := slices.Clone(r.families)
	r.mu.Unlock()
	for _, f := range families {
		if f.kind == kindGauge || f.kind == kindCounterFunc {
			vt := prometheus.GaugeValue
			if f.kind == kindCounterFunc {
				vt = prometheus.CounterValue
			}
			f.gauge(func(v float64, labelValues ...string) {
				ch <- prometheus.MustNewConstMetric(f.desc, vt, v, labelValues...)
			})
			continue
		}
		f.mu.Lock()
		order := slices.Clone(f.order)
		f.mu.Unlock()
		for _, s := range order {
			switch f.kind {
			case kindCounter:
				ch <- prometheus.MustNewConstMetric(f.desc, prometheus.CounterValue, float64(s.counter.Value()), s.labels...)
			case kindHistogram:
				h := s.histogram
				buckets := make(map[float64]uint64, len(f.buckets))
				var cum uint64
				for i, b := range f.buckets {
					cum += h.counts[i].Load()
					buckets[b] = cum
				}
				// count is read after the buckets so that +Inf >= every bucket.
				count := max(h.count.Load(), cum)
				sum := float64(h.sumNS.Load()) / 1e9
				if math.IsNaN(sum) {
					sum = 0
				}
				ch <- prometheus.MustNewConstHistogram(f.desc, count, sum, buckets, s.labels...)
			}
		}
	}
}

// CounterFunc defines a counter family whose values are read at scrape time
// from counts kept elsewhere (l4's per-listener atomics): fn calls emit once
// per series with the current total.
func (r *Registry) CounterFunc(name, help string, fn func(emit func(v float64, labelValues ...string)), labels ...string) {
	r.add(&family{name: name, help: help, desc: prometheus.NewDesc(name, help, labels, nil), kind: kindCounterFunc, gauge: fn})
}
