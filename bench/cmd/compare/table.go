package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// result is every run of one proxy in one scenario.
type result struct {
	sc      scenario
	p       *proxy
	samples []sample
	skip    string   // why the proxy does not run this scenario ("" when it does)
	notes   []string // skips, failures and run problems, deduplicated
}

func (r *result) addNote(n string) {
	for _, have := range r.notes {
		if have == n {
			return
		}
	}
	r.notes = append(r.notes, n)
}

// median of xs (the mean of the middle two for an even count); NaN for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// summary is the medians of a result's samples, each metric on its own.
type summary struct {
	n                                        int
	rate, p50, p99, cost, busy, rss, connKiB float64
}

func summarize(ss []sample) summary {
	pick := func(f func(sample) float64) float64 {
		xs := make([]float64, len(ss))
		for i, s := range ss {
			xs[i] = f(s)
		}
		return median(xs)
	}
	return summary{
		n:       len(ss),
		rate:    pick(func(s sample) float64 { return s.rate }),
		p50:     pick(func(s sample) float64 { return s.p50 }),
		p99:     pick(func(s sample) float64 { return s.p99 }),
		cost:    pick(func(s sample) float64 { return s.cost }),
		busy:    pick(func(s sample) float64 { return s.busy }),
		rss:     pick(func(s sample) float64 { return s.rssMiB }),
		connKiB: pick(func(s sample) float64 { return s.connKiB }),
	}
}

// best is the best anchor's throughput (highest) and cost (lowest) in one
// scenario; NaN when no anchor ran.
func best(rs []*result) (rate, cost float64) {
	rate, cost = math.NaN(), math.NaN()
	for _, r := range rs {
		if !r.p.anchor || len(r.samples) == 0 {
			continue
		}
		s := summarize(r.samples)
		if math.IsNaN(rate) || s.rate > rate {
			rate = s.rate
		}
		if math.IsNaN(cost) || s.cost < cost {
			cost = s.cost
		}
	}
	return rate, cost
}

var tableHeader = []string{"scenario", "proxy", "throughput", "p50", "p99", "cost", "proxy CPU", "throughput ÷ best anchor", "cost ÷ best anchor", "notes"}

// writeTable prints one Markdown table of every result, grouped by scenario
// in rs's order: medians, and ratios to the best anchor of the scenario.
func writeTable(w io.Writer, rs []*result) {
	rows := [][]string{tableHeader}
	for i := 0; i < len(rs); {
		j := i
		for j < len(rs) && rs[j].sc.name == rs[i].sc.name {
			j++
		}
		bestRate, bestCost := best(rs[i:j])
		edgeCost := plainEdgeCost(rs[i:j])
		for _, r := range rs[i:j] {
			rows = append(rows, tableRow(r, bestRate, bestCost, edgeCost))
		}
		i = j
	}
	widths := make([]int, len(tableHeader))
	for _, row := range rows {
		for c, cell := range row {
			widths[c] = max(widths[c], len([]rune(cell)))
		}
	}
	line := func(row []string) {
		var b strings.Builder
		b.WriteString("|")
		for c, cell := range row {
			b.WriteString(" ")
			b.WriteString(cell)
			b.WriteString(strings.Repeat(" ", widths[c]-len([]rune(cell))))
			b.WriteString(" |")
		}
		fmt.Fprintln(w, b.String())
	}
	line(rows[0])
	sep := make([]string, len(widths))
	for c := range sep {
		sep[c] = strings.Repeat("-", widths[c])
	}
	line(sep)
	for _, row := range rows[1:] {
		line(row)
	}
}

// plainEdgeCost is the median cost of the plain edge row in one scenario,
// which the edge variants' notes compare with; NaN when it did not run.
func plainEdgeCost(rs []*result) float64 {
	for _, r := range rs {
		if r.p.prog == "edge" && r.p.variant == (edgeVariant{}) && len(r.samples) > 0 {
			return summarize(r.samples).cost
		}
	}
	return math.NaN()
}

// tableRow is r's row: medians, ratios to the best anchor's, and for an edge
// variant its cost over plain edge's (edgeCost, NaN for none) in the notes.
func tableRow(r *result, bestRate, bestCost, edgeCost float64) []string {
	notes := strings.Join(r.notes, "; ")
	if len(r.samples) == 0 {
		return []string{r.sc.name, r.p.name, "–", "–", "–", "–", "–", "–", "–", notes}
	}
	s := summarize(r.samples)
	row := []string{r.sc.name, r.p.name, "", "–", "–", "", "", "–", "–", ""}
	switch r.sc.kind {
	case kindIdle:
		row[2] = thousands(s.rate) + " " + r.sc.unit
		row[5] = fmt.Sprintf("%.1f %s", s.cost, r.sc.costUnit)
		row[6] = "–"
		extra := fmt.Sprintf("RSS %.1f MiB, %+.1f KiB/conn", s.rss, s.connKiB)
		notes = joinNotes(extra, notes)
	default:
		row[2] = thousands(s.rate) + " " + r.sc.unit
		if r.sc.kind == kindWrk {
			row[3], row[4] = latency(s.p50), latency(s.p99)
		}
		row[5] = fmt.Sprintf("%s %s", sig3(s.cost), r.sc.costUnit)
		row[6] = fmt.Sprintf("%.0f%%", s.busy)
		if !math.IsNaN(bestRate) && bestRate > 0 {
			row[7] = fmt.Sprintf("%.2fx", s.rate/bestRate)
		}
	}
	if !math.IsNaN(bestCost) && bestCost > 0 {
		row[8] = fmt.Sprintf("%.2fx", s.cost/bestCost)
	}
	if r.p.prog == "edge" && r.p.variant != (edgeVariant{}) && !math.IsNaN(edgeCost) && edgeCost > 0 {
		notes = joinNotes(fmt.Sprintf("cost %.2fx edge's", s.cost/edgeCost), notes)
	}
	if s.n > 1 {
		notes = joinNotes(fmt.Sprintf("median of %d", s.n), notes)
	}
	row[9] = notes
	return row
}

func joinNotes(a, b string) string {
	if b == "" {
		return a
	}
	return a + "; " + b
}

// thousands formats v rounded, with comma separators.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// sig3 formats v with three significant digits (at least one decimal below 100).
func sig3(v float64) string {
	switch {
	case v >= 100:
		return thousands(v)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// latency formats microseconds as µs or ms.
func latency(us float64) string {
	if us <= 0 || math.IsNaN(us) {
		return "–"
	}
	if us < 1000 {
		return fmt.Sprintf("%.0f µs", us)
	}
	return fmt.Sprintf("%.2f ms", us/1000)
}
