package console

import (
	"fmt"
	"time"

	"github.com/spendcap/spendcap"
)

// chart is the history of one dimension drawn as bars, one per closed window (oldest first),
// against the dimension's current hard limit: server-rendered SVG, so it needs no script and no
// charting service.
type chart struct {
	Dimension string
	Limit     *int64
	Bars      []bar
	LimitY    float64 // the limit line's height from the top, when Limit is set
	Width     int
	Top       string // the figure at the top of the chart
}

// bar is one window of a chart; its geometry is in the SVG's units (chartHeight high).
type bar struct {
	WindowSeq        int64
	Start, End       string
	Usage            int64
	X, Y, W, H       float64
	Over             bool // above the current hard limit
	Label, ShortDate string
	LabelX           float64 // the middle of the bar, where ShortDate goes
}

const (
	chartHeight = 120.0 // the bars' area; the dates go below it
	chartMin    = 360.0 // the narrowest chart, however few its windows
	barGap      = 6.0
)

// historyCharts draws one chart per dimension that a past window used or that has a hard limit.
func historyCharts(st spendcap.Status, hist []spendcap.HistoryWindow) []chart {
	if len(hist) == 0 {
		return nil
	}
	dims := map[string]bool{}
	for d := range st.HardLimits {
		dims[d] = true
	}
	for _, w := range hist {
		for d := range w.Usage {
			dims[d] = true
		}
	}
	var out []chart
	for _, d := range sortedKeys(dims) {
		bw := min(48, max(12, (chartMin-barGap)/float64(len(hist))-barGap))
		c := chart{Dimension: d, Width: int(max(chartMin, float64(len(hist))*(bw+barGap)+barGap))}
		top := int64(1)
		if h, ok := st.HardLimits[d]; ok {
			c.Limit = &h
			top = max(top, h)
		}
		for _, w := range hist {
			top = max(top, w.Usage[d])
		}
		// A tenth of headroom above the tallest bar or the limit, so the limit line shows.
		top += top / 10
		c.Top = num(top)
		scale := chartHeight / float64(top)
		// History comes newest first; the chart reads left to right, oldest first.
		for i := range hist {
			w := hist[len(hist)-1-i]
			u := w.Usage[d]
			b := bar{WindowSeq: w.WindowSeq, Usage: u, W: bw, X: barGap + float64(i)*(bw+barGap)}
			b.LabelX = b.X + bw/2
			b.ShortDate = w.WindowStart.UTC().Format("01-02")
			if w.WindowEnd.Sub(w.WindowStart) < 24*time.Hour {
				b.ShortDate = w.WindowStart.UTC().Format("15:04")
			}
			b.H = float64(u) * scale
			b.Y = chartHeight - b.H
			b.Over = c.Limit != nil && u > *c.Limit
			b.Start, b.End = w.WindowStart.UTC().Format("2006-01-02 15:04"), w.WindowEnd.UTC().Format("2006-01-02 15:04")
			b.Label = fmt.Sprintf("window %d, %s to %s UTC: %s %s", w.WindowSeq, b.Start, b.End, num(u), d)
			if c.Limit != nil {
				b.Label += " of " + num(*c.Limit)
			}
			c.Bars = append(c.Bars, b)
		}
		if c.Limit != nil {
			c.LimitY = chartHeight - float64(*c.Limit)*scale
		}
		out = append(out, c)
	}
	return out
}
