package console

import (
	"fmt"
	"time"

	"github.com/spendcap/spendcap"
)

// seriesChart is a budget's usage series drawn as bars, one per hour or day from its oldest
// bucket to the running one (buckets without usage drawn empty), one chart per dimension:
// server-rendered SVG, as the history charts are.
type seriesChart struct {
	Dimension string
	Unit      string // "hour" or "day"
	Bars      []seriesBar
	Width     int
	Top       string // the figure at the top of the chart
}

// seriesBar is one bucket of a series chart; its geometry is in the SVG's units (chartHeight
// high).
type seriesBar struct {
	Start      string // RFC 3339, for tests and scripts
	Usage      int64
	Running    bool // the bucket holding now: it may still grow
	X, Y, W, H float64
	Label      string
	Tick       string // a date or hour under the bar, on some bars only
	TickX      float64
}

// seriesWidth is how wide the bars of a series chart are in all, whatever their number: 169 hours
// of a week are 4 units each.
const seriesWidth = 720.0

// seriesCharts draws buckets (newest first, as UsageSeries returns them) in zone loc: one chart per
// dimension that a bucket changed, or that has a hard limit. None when the budget has no series.
func seriesCharts(st spendcap.Status, buckets []spendcap.UsageBucket, loc *time.Location) []seriesChart {
	if len(buckets) == 0 {
		return nil
	}
	unit := "hour"
	if st.UsageSeries == spendcap.UsageSeriesDay {
		unit = "day"
	}
	// Every bucket from the oldest read to the running one, oldest first.
	byStart := map[int64]spendcap.UsageBucket{}
	for _, b := range buckets {
		byStart[b.Start.UnixMilli()] = b
	}
	oldest := buckets[len(buckets)-1].Start
	var starts []time.Time
	for s := buckets[0].Start; !s.Before(oldest) && len(starts) <= 200; s = previousBucket(s, unit, loc) {
		starts = append(starts, s)
	}
	dims := map[string]bool{}
	for d := range st.HardLimits {
		dims[d] = true
	}
	for _, b := range buckets {
		for d := range b.Usage {
			dims[d] = true
		}
	}
	n := float64(len(starts))
	bw := max(2, min(24, seriesWidth/n-1))
	var out []seriesChart
	for _, d := range sortedKeys(dims) {
		c := seriesChart{Dimension: d, Unit: unit, Width: int(max(chartMin, n*(bw+1)+1))}
		top := int64(1)
		for _, b := range buckets {
			top = max(top, b.Usage[d])
		}
		top += top / 10
		c.Top = num(top)
		scale := chartHeight / float64(top)
		for i := range starts {
			s := starts[len(starts)-1-i]
			b := byStart[s.UnixMilli()]
			end := b.End
			if end.IsZero() {
				end = nextBucket(s, unit, loc)
			}
			u := b.Usage[d]
			x := seriesBar{Start: s.UTC().Format(time.RFC3339), Usage: u, Running: i == len(starts)-1, W: bw, X: 1 + float64(i)*(bw+1)}
			x.H = max(0, float64(u)*scale)
			x.Y = chartHeight - x.H
			local := s.In(loc)
			x.Label = fmt.Sprintf("%s to %s: %s %s", local.Format("2006-01-02 15:04"), end.In(loc).Format("15:04 MST"), num(u), d)
			if unit == "day" {
				x.Label = fmt.Sprintf("%s: %s %s", local.Format("2006-01-02 (MST)"), num(u), d)
			}
			if x.Running {
				x.Label += " so far"
			}
			x.TickX = x.X + bw/2
			switch {
			case unit == "hour" && local.Hour() == 0:
				x.Tick = local.Format("01-02")
			case unit == "hour" && n <= 24 && local.Hour()%3 == 0:
				x.Tick = local.Format("15:04")
			case unit == "day" && (n <= 14 || (len(starts)-1-i)%7 == 0):
				x.Tick = local.Format("01-02")
			}
			c.Bars = append(c.Bars, x)
		}
		out = append(out, c)
	}
	return out
}

// previousBucket is the start of the bucket before the one starting at s: an hour earlier, or the
// midnight of the day before in loc.
func previousBucket(s time.Time, unit string, loc *time.Location) time.Time {
	if unit == "hour" {
		return s.Add(-time.Hour)
	}
	l := s.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day()-1, 0, 0, 0, 0, loc)
}

// nextBucket is the end of the bucket starting at s.
func nextBucket(s time.Time, unit string, loc *time.Location) time.Time {
	if unit == "hour" {
		return s.Add(time.Hour)
	}
	l := s.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day()+1, 0, 0, 0, 0, loc)
}
