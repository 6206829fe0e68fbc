package tests

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

// The library reads the common report_usage call, as the Go client writes it, without its JSON
// decoder (quick_report_args): every text of that form, and every near miss, must be answered
// exactly as the same arguments written another way (a space after the first brace, which only
// the JSON decoder takes), for a call and for a batch item, and count the same usage.
func TestQuickArgumentsAreReadAsTheJSONDecoderReadsThem(t *testing.T) {
	t.Parallel()
	var dims33 []string
	for i := range 33 {
		dims33 = append(dims33, fmt.Sprintf(`"d%d":1`, i))
	}
	texts := []string{
		`{"budget_id":"b","deltas":{"t":1}}`,
		`{"budget_id":"b","deltas":{"t":1,"u":2,"v":0}}`,
		`{"budget_id":"b","deltas":{"t":1,"t":2}}`,
		`{"budget_id":"b","deltas":{"t":0}}`,
		`{"budget_id":"b","deltas":{"t":01}}`,
		`{"budget_id":"b","deltas":{"t":00}}`,
		`{"budget_id":"b","deltas":{"t":007,"u":02}}`,
		`{"budget_id":"b","deltas":{"t":1e2}}`,
		`{"budget_id":"b","deltas":{"t":1.0}}`,
		`{"budget_id":"b","deltas":{"t":-1}}`,
		`{"budget_id":"b","deltas":{"t":200}}`,
		`{"budget_id":"b","deltas":{"t":9007199254740991}}`,
		`{"budget_id":"b","deltas":{"t":9007199254740992}}`,
		`{"budget_id":"b","deltas":{"t":99999999999999999999999}}`,
		`{"budget_id":"b","deltas":{"` + strings.Repeat("d", 64) + `":1}}`,
		`{"budget_id":"b","deltas":{"` + strings.Repeat("d", 65) + `":1}}`,
		`{"budget_id":"b","deltas":{` + strings.Join(dims33[:32], ",") + `}}`,
		`{"budget_id":"b","deltas":{` + strings.Join(dims33, ",") + `}}`,
		`{"budget_id":"b","deltas":{"t":1,}}`,
		`{"budget_id":"b","deltas":{"t":1;"u":2}}`,
		`{"budget_id":"b","deltas":{"t":4503599627370496.5}}`,
		`{"budget_id":"b","deltas":{"t":1.5}}`,
		`{"budget_id":"b","deltas":{"t":1}},`,
		`{"budget_id":"b","deltas":{"t":1}}}`,
		`{"budget_id":"b","deltas":{"t" :1}}`,
		`{"budget_id":"b","deltas":{"t":1 }}`,
		`{"budget_id":"b","deltas":{"t/x":1}}`,
		`{"budget_id":"b","deltas":{}}`,
		`{"budget_id":"nobody","deltas":{"t":1}}`,
		`{"budget_id":"` + strings.Repeat("b", 129) + `","deltas":{"t":1}}`,
		`{"budget_id":"b` + "\x01" + `","deltas":{"t":1}}`,
		`{"budget_id":"g/x","deltas":{"t":3}}`,
	}
	for i, text := range texts {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			spaced := "{ " + text[1:]
			for _, batch := range []bool{false, true} {
				quick, quickUsage := quickCall(t, text, batch)
				slow, slowUsage := quickCall(t, spaced, batch)
				if quick != slow || quickUsage != slowUsage {
					t.Errorf("%s (batch %v):\n answered %s, usage %s\nwritten as %s:\n answered %s, usage %s",
						text, batch, quick, quickUsage, spaced, slow, slowUsage)
				}
			}
		})
	}
}

// quickCall makes report_usage with arguments text on a database of its own holding budgets b
// (hard limit 100 on t) and g/x, as a call or as the one item of a batch, and returns its answer
// (or error) and the usage of both budgets after it.
func quickCall(t *testing.T, text string, batch bool) (answer, usage string) {
	t.Helper()
	rdb := testenv.Valkey(t)
	if _, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true, AllowReplay: true}); err != nil { // the library is server-wide: load it as the other tests do
		t.Fatal(err)
	}
	for _, c := range []struct{ key, args string }{
		{valkey.Key("b"), `{"budget_id":"b","hard_limits":{"t":100},"at_ms":1773144000000}`},
		{valkey.Key("g/x"), `{"budget_id":"g/x","at_ms":1773144000000}`},
	} {
		if err := rdb.FCall(ctx, "sc_create_budget", []string{c.key}, c.args).Err(); err != nil {
			t.Fatal(err)
		}
	}
	key := valkey.Key("b")
	if strings.Contains(text, `"g/x"`) {
		key = valkey.Key("g/x")
	} else if strings.Contains(text, `"nobody"`) {
		key = valkey.Key("nobody")
	} else if !strings.Contains(text, `"budget_id":"b"`) {
		key = "sc:{other}"
	}
	var reply string
	var err error
	if batch {
		reply, err = rdb.FCall(ctx, "sc_report_usage_batch", []string{key}, `{}`, text).Text()
	} else {
		reply, err = rdb.FCall(ctx, "sc_report_usage", []string{key}, text).Text()
	}
	if err != nil {
		reply = "error " + err.Error()
	}
	for _, id := range []string{"b", "g/x"} {
		st, err := rdb.FCall(ctx, "sc_budget_status", []string{valkey.Key(id)}, fmt.Sprintf(`{"budget_id":%q}`, id)).Text()
		if err != nil {
			t.Fatal(err)
		}
		start := strings.Index(st, `"usage":`)
		usage += id + " " + st[start:start+strings.Index(st[start:], "}")+1] + " "
	}
	return reply, usage
}

// The common call as the Go client writes it is read without the JSON decoder, into the table the
// decoder makes: quick_report_args, called in a copy of the library (renamed, with a function that
// answers what it read) that the test loads next to it.
func TestTheCommonCallIsReadWithoutTheJSONDecoder(t *testing.T) {
	t.Parallel()
	rdb := testenv.Valkey(t)
	src := strings.Replace(valkey.Library, "#!lua name="+valkey.LibraryName, "#!lua name=spendcap_quick_test", 1)
	src = strings.ReplaceAll(src, "function_name = 'sc_' .. name", "function_name = 'scqt_' .. name")
	src += `
redis.register_function('scqt_quick_report_args', function(keys, argv)
    NULL = cjson.null
    local a = quick_report_args(argv[1])
    return a and encode(a) or 'nil'
end)
`
	if err := rdb.FunctionLoadReplace(ctx, src).Err(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		text  string
		quick bool
	}{
		{`{"budget_id":"b1","deltas":{"tokens":1}}`, true},
		{`{"budget_id":"acme/team-1/key-7","deltas":{"tokens":12,"usd.micros":0,"img:hd-1_x":9007199254740991}}`, true},
		{`{"budget_id":"~!#$%&'()*+,-./:;<=>?@[]^_` + "`" + `|{}","deltas":{"t":0}}`, true},
		{`{"budget_id":"b","deltas":{"t":1,"t":2}}`, true},
		{`{"budget_id":"b","deltas":{"t":-1}}`, false},
		{`{"budget_id":"b","deltas":{"t":1.0}}`, false},
		{`{"budget_id":"b","deltas":{"t":1e3}}`, false},
		{`{"budget_id":"b\"","deltas":{"t":1}}`, false},
		{`{"budget_id":"b\\","deltas":{"t":1}}`, false},
		{`{"budget_id":"b","deltas":{"t":1},"dedup_key":"k"}`, false},
		{`{"deltas":{"t":1},"budget_id":"b"}`, false},
		{`{ "budget_id":"b","deltas":{"t":1}}`, false},
		{`{"budget_id":"b","deltas":{"t":1,}}`, false},
		{`{"budget_id":"b","deltas":{"t":1;"u":2}}`, false},
		{`{"budget_id":"b","deltas":{"t/x":1}}`, false},
		{`{"budget_id":"b","deltas":{}}`, false},
	} {
		got, err := rdb.FCall(ctx, "scqt_quick_report_args", []string{"sc:{b}"}, tc.text).Text()
		if err != nil {
			t.Fatalf("%s: %v", tc.text, err)
		}
		if (got != "nil") != tc.quick {
			t.Errorf("%s: quick_report_args answered %s, want quick = %v", tc.text, got, tc.quick)
			continue
		}
		if !tc.quick {
			continue
		}
		var quick, decoded any
		if err := json.Unmarshal([]byte(got), &quick); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(tc.text), &decoded); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(quick, decoded) {
			t.Errorf("%s: read as %s", tc.text, got)
		}
	}
}
