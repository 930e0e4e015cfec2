package console

import (
	"fmt"
	"strconv"
	"time"
)

// outcome is one delivery attempt's record as the API lists it (proto.Outcome's JSON).
type outcome struct {
	ID            string     `json:"id"`
	StreamID      string     `json:"streamId"`
	Result        string     `json:"result"`
	Attempt       int        `json:"attempt"`
	MaxAttempts   int        `json:"maxAttempts"`
	StatusCode    int        `json:"statusCode"`
	Error         string     `json:"error"`
	LatencyMs     float64    `json:"latencyMs"`
	At            time.Time  `json:"at"`
	NextAttemptAt *time.Time `json:"nextAttemptAt"`
}

// OK reports whether the attempt delivered.
func (o *outcome) OK() bool { return o.Result == "delivered" }

// When is the attempt's time for display.
func (o *outcome) When() string { return o.At.UTC().Format(time.RFC3339) }

// Next is when the next attempt is due, "" when none is.
func (o *outcome) Next() string {
	if o.NextAttemptAt == nil {
		return ""
	}
	return o.NextAttemptAt.UTC().Format(time.RFC3339)
}

// chart is the stream page's bar chart of delivered and failed attempts over time, drawn as
// SVG by the template from these numbers (no script, no library).
type chart struct {
	Bars      []bar
	From, To  string
	Span      string
	Delivered int
	Failed    int
	Width     int
	Height    int
}

// bar is one time slot: its x and the heights of its delivered and failed parts.
type bar struct {
	X, W           int
	OkY, OkH, BadY int
	BadH           int
	Ok, Bad        int
	Title          string
}

const (
	chartSlots  = 48
	chartHeight = 120
	slotWidth   = 20
	// minSpan keeps a young stream's chart from being a few seconds wide.
	minSpan = 10 * time.Minute
)

// newChart counts the attempts of recs (oldest first) into chartSlots slots from the oldest
// record (at least minSpan ago) to now.
func newChart(recs []outcome, now time.Time) chart {
	from := now.Add(-minSpan)
	if len(recs) > 0 && recs[0].At.Before(from) {
		from = recs[0].At
	}
	span := now.Sub(from)
	slot := span / chartSlots
	ok, bad := make([]int, chartSlots), make([]int, chartSlots)
	c := chart{Width: chartSlots * slotWidth, Height: chartHeight, From: from.UTC().Format("15:04"), To: now.UTC().Format("15:04"),
		Span: spanText(span)}
	for _, o := range recs {
		i := min(max(int(o.At.Sub(from)/slot), 0), chartSlots-1)
		if o.OK() {
			ok[i]++
			c.Delivered++
		} else {
			bad[i]++
			c.Failed++
		}
	}
	top := 1
	for i := range ok {
		top = max(top, ok[i]+bad[i])
	}
	for i := range ok {
		okH, badH := ok[i]*chartHeight/top, bad[i]*chartHeight/top
		start := from.Add(time.Duration(i) * slot).UTC().Format("15:04:05")
		c.Bars = append(c.Bars, bar{X: i*slotWidth + 2, W: slotWidth - 4, OkY: chartHeight - okH, OkH: okH,
			BadY: chartHeight - okH - badH, BadH: badH, Ok: ok[i], Bad: bad[i],
			Title: fmt.Sprintf("from %s UTC: %d delivered, %d failed", start, ok[i], bad[i])})
	}
	return c
}

// spanText is a chart's span in words: "10 minutes", "3 hours".
func spanText(d time.Duration) string {
	if d < 2*time.Hour {
		return strconv.Itoa(int(d.Round(time.Minute)/time.Minute)) + " minutes"
	}
	return strconv.Itoa(int(d.Round(time.Hour)/time.Hour)) + " hours"
}

func percent(part, whole int) string {
	return strconv.FormatFloat(100*float64(part)/float64(whole), 'f', 1, 64) + "%"
}
