package valkey

import (
	"slices"
	"strconv"
	"strings"

	"github.com/spendcap/spendcap"
)

// The common report_usage call (a budget, its deltas, nothing else) is the one a service makes
// on every request: the client writes its arguments in the one form the library reads without
// its JSON decoder (quick_report_args in valkey/lua/000_validation.lua) and reads the library's
// fast-path answer (fast_report in valkey/lua/200_report_usage.lua) without encoding/json. Any other
// call, or answer, goes through encoding/json.

// quickReportArgs encodes the arguments of a report with no dedup key, no also_charge and no
// instant (a call's, or a batch item's) as {"budget_id":"<id>","deltas":{"<dim>":<n>,...}}
// (dimensions in byte order), or returns nil when the report has more or a string needs escaping:
// json.Marshal then encodes it.
func quickReportArgs(p spendcap.ReportUsageParams) rawArgs {
	if p.DedupKey != "" || len(p.AlsoCharge) > 0 || !p.At.IsZero() || len(p.Deltas) == 0 || !plain(p.BudgetID) {
		return nil
	}
	b := make([]byte, 0, 32+len(p.BudgetID)+32*len(p.Deltas))
	b = append(b, `{"budget_id":"`...)
	b = append(b, p.BudgetID...)
	b = append(b, `","deltas":{`...)
	dims := make([]string, 0, len(p.Deltas))
	for d := range p.Deltas {
		dims = append(dims, d)
	}
	slices.Sort(dims)
	for i, d := range dims {
		if !plain(d) {
			return nil
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, d...)
		b = append(b, `":`...)
		b = strconv.AppendInt(b, p.Deltas[d], 10)
	}
	return append(b, "}}"...)
}

// plain says whether s goes into a JSON string as it is: printable ASCII without '"' or '\'.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// The fast path's answer, as fast_report writes it: an 'ok' outcome, its window's end, what
// remains and its window's start.
const (
	fastHead = `{"applied":true,"breach_budget_id":null,"dimension":null,"limit_value":null,"next_reset_at":`
	fastMid  = `,"outcome":"ok","remaining":`
	fastTail = `,"replayed":false,"usage":null,"window_start":`
)

// decodeFast reads the fast path's answer; json.Unmarshal reads any other.
func (r *outcomeReply) decodeFast(s string) bool {
	rest, ok := strings.CutPrefix(s, fastHead)
	if !ok {
		return false
	}
	nextReset, rest, ok := cutMillis(rest, true)
	if !ok {
		return false
	}
	if rest, ok = strings.CutPrefix(rest, fastMid); !ok {
		return false
	}
	remaining, rest, ok := cutRemaining(rest)
	if !ok {
		return false
	}
	if rest, ok = strings.CutPrefix(rest, fastTail); !ok {
		return false
	}
	windowStart, rest, ok := cutMillis(rest, false)
	if !ok || rest != "}" {
		return false
	}
	*r = outcomeReply{Outcome: string(spendcap.OutcomeOK), Applied: true, WindowStart: windowStart, NextResetAt: nextReset,
		Remaining: remaining}
	return true
}

// cutRemaining reads the object of the fast answer's remaining that s starts with,
// {"<dim>":<n>,...} with names of [A-Za-z0-9_.:-] (no escapes), and returns the rest.
func cutRemaining(s string) (map[string]int64, string, bool) {
	rest, ok := strings.CutPrefix(s, "{")
	if !ok {
		return nil, s, false
	}
	m := map[string]int64{}
	if rest, ok = strings.CutPrefix(rest, "}"); ok {
		return m, rest, true
	}
	for {
		if rest, ok = strings.CutPrefix(rest, `"`); !ok {
			return nil, s, false
		}
		end := strings.IndexByte(rest, '"')
		if end < 0 || strings.IndexByte(rest[:end], '\\') >= 0 {
			return nil, s, false
		}
		name := rest[:end]
		if rest, ok = strings.CutPrefix(rest[end+1:], ":"); !ok {
			return nil, s, false
		}
		var v *int64
		if v, rest, ok = cutMillis(rest, false); !ok {
			return nil, s, false
		}
		m[name] = *v
		if rest, ok = strings.CutPrefix(rest, "}"); ok {
			return m, rest, true
		}
		if rest, ok = strings.CutPrefix(rest, ","); !ok {
			return nil, s, false
		}
	}
}

// cutMillis reads the integer (or, with orNull, null) that s starts with and returns the rest.
func cutMillis(s string, orNull bool) (*int64, string, bool) {
	if rest, ok := strings.CutPrefix(s, "null"); ok && orNull {
		return nil, rest, true
	}
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	v, err := strconv.ParseInt(s[:n], 10, 64)
	if err != nil || n > 1 && s[0] == '0' { // JSON has no leading zeros
		return nil, s, false
	}
	return &v, s[n:], true
}

// decodeFastBatch reads a batch's answer when every item is the fast path's answer, as
// sc_report_usage_batch writes it: '[', the n answers separated by ',', ']'. It says false for any
// other answer, which json.Unmarshal then reads whole.
func decodeFastBatch(reply string, n int) ([]spendcap.BatchResult, bool) {
	rest, ok := strings.CutPrefix(reply, "[")
	if !ok {
		return nil, false
	}
	out := make([]spendcap.BatchResult, n)
	for i := range out {
		if i > 0 {
			if rest, ok = strings.CutPrefix(rest, ","); !ok {
				return nil, false
			}
		}
		// The fast answer holds one '}' inside (remaining's), then its last byte.
		inner := strings.IndexByte(rest, '}')
		end := -1
		if inner >= 0 {
			if e := strings.IndexByte(rest[inner+1:], '}'); e >= 0 {
				end = inner + 1 + e
			}
		}
		var r outcomeReply
		if end < 0 || !r.decodeFast(rest[:end+1]) {
			return nil, false
		}
		out[i].Outcome = r.outcome()
		rest = rest[end+1:]
	}
	return out, rest == "]"
}
