package console

import (
	"fmt"
	"html/template"
	"net/url"
	"strconv"
	"time"
)

// funcs are the templates' helpers. Figures are exact, with grouping separators; an
// abbreviation only ever stands beside the exact figure.
var funcs = template.FuncMap{
	"num":        num,
	"abbr":       abbr,
	"permille":   permille,
	"when":       when,
	"budgetURL":  budgetURL,
	"deref":      func(p *int64) int64 { return *p },
	"pct":        func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
	"countN":     func(c count) int64 { return int64(c.N) },
	"int64":      toInt64,
	"ago":        ago,
	"quotaRowOf": func(prefix string, q quotaView) quotaRowView { return quotaRowView{Prefix: prefix, Policy: q} },
	"rowsOf":     func(prefix string, rs []row) rowsView { return rowsView{Prefix: prefix, Rows: rs} },
}

// quotaRowView is the data of the "quotarow" template: a policy in a table of policies.
type quotaRowView struct {
	Prefix string
	Policy quotaView
}

// rowsView is the data of the "rows" template: a table of budgets.
type rowsView struct {
	Prefix string
	Rows   []row
}

// num writes n in full with thousands separators: 1234567 -> "1,234,567".
func num(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// abbr is a short form of n for reading at a glance ("98.8k", "1.2M"), empty below 10,000.
func abbr(n int64) string {
	f := float64(n)
	switch {
	case n >= 1e12 || n <= -1e12:
		return fmt.Sprintf("%.1fT", f/1e12)
	case n >= 1e9 || n <= -1e9:
		return fmt.Sprintf("%.1fG", f/1e9)
	case n >= 1e6 || n <= -1e6:
		return fmt.Sprintf("%.1fM", f/1e6)
	case n >= 1e4 || n <= -1e4:
		return fmt.Sprintf("%.1fk", f/1e3)
	}
	return ""
}

// permille writes a utilisation in thousandths as a percent with one decimal, "-" for none.
func permille(u *int) string {
	if u == nil {
		return "-"
	}
	return strconv.Itoa(*u/10) + "." + strconv.Itoa(*u%10) + "%"
}

// when writes an instant in zone loc, and in UTC too when the zone is not UTC.
func when(t any, loc *time.Location) string {
	var at time.Time
	switch v := t.(type) {
	case time.Time:
		at = v
	case *time.Time:
		if v == nil {
			return "never"
		}
		at = *v
	}
	local := at.In(loc).Format("2006-01-02 15:04:05 MST")
	if loc == time.UTC {
		return local
	}
	return local + " (" + at.UTC().Format("15:04 UTC") + ")"
}

// budgetURL is the page of budget id under prefix.
func budgetURL(prefix, id string) string {
	return prefix + "/budget?id=" + url.QueryEscape(id)
}

// ago writes how long before now t was, in the largest whole unit ("3 min ago"), or "never".
func ago(t *time.Time, now time.Time) string {
	if t == nil {
		return "never"
	}
	d := now.Sub(*t)
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + " s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + " h ago"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + " days ago"
}

// toInt64 widens the integers the templates print with num.
func toInt64(n any) int64 {
	switch v := n.(type) {
	case int:
		return int64(v)
	case int32:
		return int64(v)
	case int64:
		return v
	}
	return 0
}
