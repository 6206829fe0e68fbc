package valkey

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spendcap/spendcap"
)

// What the client writes without encoding/json must be what encoding/json writes, read back.
func TestQuickReportArgsEncodeWhatJSONWould(t *testing.T) {
	for _, p := range []spendcap.ReportUsageParams{
		{BudgetID: "b1", Deltas: map[string]int64{"tokens": 1}},
		{BudgetID: "acme/team-1/key-7", Deltas: map[string]int64{"tokens": 9007199254740991, "usd.micros": 0, "a:b-c_d": 12}},
		{BudgetID: "a<b>&c", Deltas: map[string]int64{"t": -1}}, // encoding/json escapes <>&; both read back the same
		{BudgetID: "~!#$%'()*+,-./:;=?@[]^_`|", Deltas: map[string]int64{"t": 5}},
	} {
		raw := quickReportArgs(p)
		if raw == nil {
			t.Errorf("%+v: no quick arguments", p)
			continue
		}
		want, _ := json.Marshal(args{"budget_id": p.BudgetID, "deltas": p.Deltas})
		var got, exp any
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Errorf("%+v: %s is not JSON: %v", p, raw, err)
		}
		_ = json.Unmarshal(want, &exp)
		if !reflect.DeepEqual(got, exp) {
			t.Errorf("%+v: %s, want what %s holds", p, raw, want)
		}
	}
	for _, p := range []spendcap.ReportUsageParams{
		{BudgetID: "b1", Deltas: map[string]int64{"t": 1}, DedupKey: "k"},
		{BudgetID: "b1", Deltas: map[string]int64{"t": 1}, AlsoCharge: []string{"b2"}},
		{BudgetID: "b1", Deltas: map[string]int64{"t": 1}, At: time.UnixMilli(1)},
		{BudgetID: "b1", Deltas: map[string]int64{}},
		{BudgetID: `b"1`, Deltas: map[string]int64{"t": 1}},
		{BudgetID: `b\1`, Deltas: map[string]int64{"t": 1}},
		{BudgetID: "b\x001", Deltas: map[string]int64{"t": 1}},
		{BudgetID: "bé", Deltas: map[string]int64{"t": 1}},
		{BudgetID: "b1", Deltas: map[string]int64{"t\n": 1}},
	} {
		if raw := quickReportArgs(p); raw != nil {
			t.Errorf("%+v: quick arguments %s, want none (encoding/json's)", p, raw)
		}
	}
}

// The fast path's answer read without encoding/json is what encoding/json reads; any other answer
// is left to encoding/json.
func TestFastOutcomeDecodesAsJSONWould(t *testing.T) {
	for _, s := range []string{
		`{"applied":true,"breach_budget_id":null,"dimension":null,"limit_value":null,"next_reset_at":null,"outcome":"ok","remaining":{"t":5},"replayed":false,"usage":null,"window_start":1796587978426}`,
		`{"applied":true,"breach_budget_id":null,"dimension":null,"limit_value":null,"next_reset_at":1796601600000,"outcome":"ok","remaining":{"t":5},"replayed":false,"usage":null,"window_start":0}`,
		`{"applied":true,"breach_budget_id":null,"dimension":null,"limit_value":null,"next_reset_at":null,"outcome":"ok","remaining":{},"replayed":false,"usage":null,"window_start":1}`,
		`{"applied":true,"breach_budget_id":null,"dimension":null,"limit_value":null,"next_reset_at":null,"outcome":"ok","remaining":{"A-b.c:d_e":0,"tokens":9007199254740991},"replayed":false,"usage":null,"window_start":1}`,
	} {
		var fast, slow outcomeReply
		if !fast.decodeFast(s) {
			t.Errorf("%s: not read as the fast path's answer", s)
		}
		if err := json.Unmarshal([]byte(s), &slow); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fast.outcome(), slow.outcome()) {
			t.Errorf("%s: read as %+v, encoding/json reads %+v", s, fast.outcome(), slow.outcome())
		}
	}
	for _, s := range []string{
		`{"applied":true,"breach_budget_id":null,"dimension":null,"limit_value":null,"next_reset_at":null,"outcome":"ok","remaining":{"t":5},"replayed":true,"usage":null,"window_start":1}`,
		`{"applied":true,"breach_budget_id":null,"dimension":null,"limit_value":null,"next_reset_at":null,"outcome":"soft_breach","remaining":{},"replayed":false,"usage":null,"window_start":1}`,
		`{"applied":true,"breach_budget_id":null,"dimension":null,"limit_value":null,"next_reset_at":null,"outcome":"ok","remaining":{"t":5},"replayed":false,"usage":null,"window_start":01}`,
		`{"applied":true,"breach_budget_id":null,"dimension":null,"limit_value":null,"next_reset_at":-5,"outcome":"ok","remaining":{"t":5},"replayed":false,"usage":null,"window_start":1}`,
		`{"applied":true,"breach_budget_id":null,"dimension":null,"limit_value":null,"next_reset_at":null,"outcome":"ok","remaining":{"t":5},"replayed":false,"usage":null,"window_start":null}`,
		`{"applied":true,"breach_budget_id":null,"dimension":null,"limit_value":null,"next_reset_at":null,"outcome":"ok","remaining":{"t":5},"replayed":false,"usage":null,"window_start":1,"expires_at":2}`,
		`{"applied":true,"breach_budget_id":null,"dimension":null,"limit_value":null,"next_reset_at":null,"outcome":"ok","remaining":{"t":5},"replayed":false,"usage":null,"window_start":1} `,
		`{"applied":false,"breach_budget_id":null,"dimension":"t","limit_value":5,"next_reset_at":null,"outcome":"hard_breach","remaining":{"t":0},"replayed":false,"usage":5,"window_start":1}`,
		`{"applied":true,"breach_budget_id":null,"dimension":null,"limit_value":null,"next_reset_at":null,"outcome":"ok","remaining":null,"replayed":false,"usage":null,"window_start":1}`,
		`{"applied":true,"breach_budget_id":null,"dimension":null,"limit_value":null,"next_reset_at":null,"outcome":"ok","remaining":{"t":-1},"replayed":false,"usage":null,"window_start":1}`,
		`{"applied":true,"breach_budget_id":null,"dimension":null,"limit_value":null,"next_reset_at":null,"outcome":"ok","remaining":{"t":1,},"replayed":false,"usage":null,"window_start":1}`,
		`{"applied":true,"breach_budget_id":null,"dimension":null,"limit_value":null,"next_reset_at":null,"outcome":"ok","remaining":{"t\"":1},"replayed":false,"usage":null,"window_start":1}`,
		`{"applied":true,"breach_budget_id":null,"dimension":null,"limit_value":null,"next_reset_at":null,"outcome":"ok","remaining":{"t":1}"replayed":false,"usage":null,"window_start":1}`,
	} {
		var r outcomeReply
		if r.decodeFast(s) {
			t.Errorf("%s: read as the fast path's answer %+v", s, r)
		}
	}
}

// A batch whose items all took the fast path is read without encoding/json, as encoding/json reads
// it; any other batch answer is left to encoding/json.
func TestFastBatchDecodesAsJSONWould(t *testing.T) {
	const (
		a = `{"applied":true,"breach_budget_id":null,"dimension":null,"limit_value":null,"next_reset_at":null,"outcome":"ok","remaining":{"t":5},"replayed":false,"usage":null,"window_start":1796587978426}`
		b = `{"applied":true,"breach_budget_id":null,"dimension":null,"limit_value":null,"next_reset_at":1796601600000,"outcome":"ok","remaining":{"t":5},"replayed":false,"usage":null,"window_start":7}`
		e = `{"error_code":"SC001","error_message":"budget_id: no budget b9"}`
	)
	for _, reply := range []string{"[" + a + "]", "[" + a + "," + b + "," + a + "]"} {
		n := strings.Count(reply, "window_start")
		fast, ok := decodeFastBatch(reply, n)
		if !ok {
			t.Errorf("%s: not read as fast answers", reply)
			continue
		}
		var rs []batchReply
		if err := json.Unmarshal([]byte(reply), &rs); err != nil {
			t.Fatal(err)
		}
		for i := range rs {
			if !reflect.DeepEqual(fast[i].Outcome, rs[i].outcome()) {
				t.Errorf("%s item %d: read as %+v, encoding/json reads %+v", reply, i, fast[i].Outcome, rs[i].outcome())
			}
		}
	}
	for _, c := range []struct {
		reply string
		n     int
	}{
		{"[" + a + "," + e + "]", 2},
		{"[" + e + "," + a + "]", 2},
		{"[" + a + "," + a + "]", 1},
		{"[" + a + "]", 2},
		{"[" + a + " ," + a + "]", 2},
		{"[" + a + a + "]", 2},
		{"[" + a + "] ", 1},
		{a, 1},
	} {
		if _, ok := decodeFastBatch(c.reply, c.n); ok {
			t.Errorf("%s (%d items): read as fast answers", c.reply, c.n)
		}
	}
}
