package metrics

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRegistryRendersPrometheusText(t *testing.T) {
	r := NewRegistry()
	req := r.Counter("edge_requests_total", "Requests.", "route", "code")
	req.With("example.com/app/", "200").Add(3)
	req.With("example.com/app/", "404").Inc()
	if got := req.With("example.com/app/", "200"); got.Value() != 3 {
		t.Fatalf("With returned a different series: value %d, want 3", got.Value())
	}
	dur := r.Histogram("edge_request_duration_seconds", "Duration.", DurationBuckets, "route")
	h := dur.With("example.com/app/")
	h.Observe(300 * time.Microsecond)
	h.Observe(20 * time.Millisecond)
	h.Observe(time.Minute)
	r.GaugeFunc("edge_upstream_healthy", "Health.", func(emit func(float64, ...string)) {
		emit(1, "app", "10.0.0.1:80")
		emit(0, "app", "10.0.0.2:80")
	}, "pool", "endpoint")

	want := `
# HELP edge_requests_total Requests.
# TYPE edge_requests_total counter
edge_requests_total{code="200",route="example.com/app/"} 3
edge_requests_total{code="404",route="example.com/app/"} 1
# HELP edge_upstream_healthy Health.
# TYPE edge_upstream_healthy gauge
edge_upstream_healthy{endpoint="10.0.0.1:80",pool="app"} 1
edge_upstream_healthy{endpoint="10.0.0.2:80",pool="app"} 0
`
	if err := testutil.CollectAndCompare(r, strings.NewReader(want), "edge_requests_total", "edge_upstream_healthy"); err != nil {
		t.Error(err)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(r); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "edge_request_duration_seconds" {
			continue
		}
		hist := mf.GetMetric()[0].GetHistogram()
		if hist.GetSampleCount() != 3 {
			t.Errorf("histogram count = %d, want 3", hist.GetSampleCount())
		}
		for _, b := range hist.GetBucket() {
			switch b.GetUpperBound() {
			case .0005:
				if b.GetCumulativeCount() != 1 {
					t.Errorf("bucket 0.5ms = %d, want 1", b.GetCumulativeCount())
				}
			case 10:
				if b.GetCumulativeCount() != 2 {
					t.Errorf("bucket 10s = %d, want 2 (the minute is only in +Inf)", b.GetCumulativeCount())
				}
			}
		}
		return
	}
	t.Error("histogram family missing from Gather")
}

func TestFamiliesListsEveryFamilyWithOrWithoutSeries(t *testing.T) {
	r := NewRegistry()
	r.Counter("edge_requests_total", "Requests.", "route", "code")
	r.Histogram("edge_request_duration_seconds", "Duration.", DurationBuckets, "route")
	r.GaugeFunc("edge_upstream_healthy", "Health.", func(func(float64, ...string)) {}, "pool")
	r.CounterFunc("edge_l4_rejections_total", "Rejections.", func(func(float64, ...string)) {}, "listener")
	want := []Family{
		{"edge_requests_total", "Requests.", "counter"},
		{"edge_request_duration_seconds", "Duration.", "histogram"},
		{"edge_upstream_healthy", "Health.", "gauge"},
		{"edge_l4_rejections_total", "Rejections.", "counter"},
	}
	if got := r.Families(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Families() = %v, want %v", got, want)
	}
}

func BenchmarkCounterInc(b *testing.B) {
	c := NewRegistry().Counter("c", "c", "l").With("x")
	b.ReportAllocs()
	for b.Loop() {
		c.Inc()
	}
}

func BenchmarkHistogramObserve(b *testing.B) {
	h := NewRegistry().Histogram("h", "h", DurationBuckets, "l").With("x")
	b.ReportAllocs()
	for b.Loop() {
		h.Observe(3 * time.Millisecond)
	}
}
