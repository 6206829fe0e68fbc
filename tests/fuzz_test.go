package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap/internal/bindgen"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

// callBound is how long one call may take on either backend before the fuzz test calls it a hang.
const callBound = 2 * time.Second

// fuzzFixtures are the calls that build the state every fuzzed call meets, on both backends: a
// limited daily budget with usage, a spend, a live and an expired reservation, an unlimited budget,
// and a quota policy with one holder.
var fuzzFixtures = []rawCall{
	{"create_budget", `{"budget_id": "b1", "hard_limits": {"t": 100, "u": 50}, "soft_limits": {"t": 80}, "reset_every": "1 day", "at_ms": 1773144000000}`, ""},
	{"report_usage", `{"budget_id": "b1", "deltas": {"t": 10}, "dedup_key": "d1", "at_ms": 1773144000000}`, ""},
	{"record_spend", `{"budget_id": "b1", "execution_id": "e1", "deltas": {"u": 5}, "idempotency_key": "k1", "at_ms": 1773144000000}`, ""},
	{"reserve", `{"budget_id": "b1", "reservation_id": "r1", "amounts": {"t": 5}, "ttl_seconds": 3600, "at_ms": 1773144000000}`, ""},
	{"reserve", `{"budget_id": "b1", "reservation_id": "r2", "amounts": {"u": 1}, "ttl_seconds": 86400}`, ""},
	{"create_budget", `{"budget_id": "b2"}`, ""},
	{"create_quota_policy", `{"policy_id": "q", "window_seconds": 60, "max_requests": 5, "max_concurrent": 1, "lease_seconds": 30}`, ""},
	{"acquire_quota", `{"policy_id": "q", "holder_id": "h"}`, ""},
}

// fuzzBase holds a valid value for every argument name the functions take; a fuzzed call starts from
// the ones its function has and replaces one, so that most inputs pass the JSON parser and reach
// the rules behind it.
var fuzzBase = map[string]json.RawMessage{
	"budget_id": json.RawMessage(`"b1"`), "policy_id": json.RawMessage(`"q"`), "holder_id": json.RawMessage(`"h2"`),
	"deltas": json.RawMessage(`{"t": 1}`), "amounts": json.RawMessage(`{"t": 1}`), "actual": json.RawMessage(`{"t": 1}`),
	"execution_id": json.RawMessage(`"e1"`), "reservation_id": json.RawMessage(`"r1"`), "dedup_key": json.RawMessage(`"d2"`),
	"idempotency_key": json.RawMessage(`"k2"`), "ttl_seconds": json.RawMessage(`60`), "max_rows": json.RawMessage(`10`),
	"hard_limits": json.RawMessage(`{"t": 100, "u": 50}`), "soft_limits": json.RawMessage(`{"t": 80}`),
	"reset_every": json.RawMessage(`"1 day"`), "window_seconds": json.RawMessage(`60`), "max_requests": json.RawMessage(`5`),
	"max_concurrent": json.RawMessage(`1`), "lease_seconds": json.RawMessage(`30`),
	"also_charge": json.RawMessage(`["b2"]`), "also_policies": json.RawMessage(`[]`), "parent_id": json.RawMessage(`"b2"`),
	"items": json.RawMessage(`[{"budget_id": "b1", "deltas": {"t": 1}, "dedup_key": "i1"}]`), "repair": json.RawMessage(`false`),
	"alert_percents": json.RawMessage(`[50, 90]`), "budget_ids": json.RawMessage(`["b1"]`), "top_n": json.RawMessage(`5`),
	"after_id": json.RawMessage(`0`), "before_id": json.RawMessage(`5`), "kind": json.RawMessage(`"threshold"`), "url": json.RawMessage(`"http://127.0.0.1:9/hook"`),
	"secret": json.RawMessage(`"0123456789abcdef0123456789abcdef"`),
}

// fuzzTarget holds one test binary's servers for FuzzHostileCalls: a database with the fixtures
// committed (each call runs in a transaction rolled back afterwards) and a Valkey database rebuilt
// for each call.
type fuzzTarget struct {
	pg       *pgx.Conn
	types    map[string]map[string]string
	fns      []string        // every SQL function, sorted
	vkFns    map[string]bool // the functions the Valkey library registers
	snapshot string          // SQL reading every spendcap table
	rdb      *redis.Client
	log      *os.File // SPENDCAP_FUZZ_LOG: one line per call, for the figures
}

func newFuzzTarget(f *testing.F) *fuzzTarget {
	url := testenv.NewDatabase(f)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = conn.Close(context.Background()) })
	fns, err := bindgen.Introspect(ctx, conn, "spendcap")
	if err != nil {
		f.Fatal(err)
	}
	ft := &fuzzTarget{pg: conn, types: map[string]map[string]string{}, vkFns: map[string]bool{}}
	for _, fn := range fns {
		ft.fns = append(ft.fns, fn.Name)
		ft.types[fn.Name] = map[string]string{}
		for _, a := range fn.Args {
			ft.types[fn.Name][a.Name] = a.Type
		}
	}
	sort.Strings(ft.fns)
	var tables []string
	rows, _ := conn.Query(ctx, `SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname LIKE 'spendcap%' ORDER BY 1`)
	if tables, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil || len(tables) == 0 {
		f.Fatalf("spendcap tables: %v %v", tables, err)
	}
	var parts []string
	for _, tbl := range tables {
		parts = append(parts, fmt.Sprintf(`(SELECT '%s: ' || coalesce(string_agg(x::text, ' | ' ORDER BY x::text), '') FROM %s x)`, tbl, tbl))
	}
	ft.snapshot = `SELECT concat_ws(E'\n', ` + strings.Join(parts, ", ") + `)`
	for _, c := range fuzzFixtures {
		if _, err := runRaw(ctx, conn, ft.types, c.fn, c.args); err != nil {
			f.Fatalf("postgres fixture %s %s: %v", c.fn, c.args, err)
		}
	}

	// A client of its own, so that a call past the bound times out instead of waiting.
	opts, err := redis.ParseURL(testenv.ValkeyURL(f))
	if err != nil {
		f.Fatal(err)
	}
	opts.DB = testenv.Valkey(f).Options().DB
	opts.ReadTimeout, opts.ContextTimeoutEnabled, opts.MaxRetries = callBound+time.Second, true, -1
	ft.rdb = redis.NewClient(opts)
	f.Cleanup(func() { _ = ft.rdb.Close() })
	if _, err := valkey.NewClient(ctx, ft.rdb, valkey.Options{AllowVolatile: true, AllowReplay: true}); err != nil {
		f.Fatal(err)
	}
	libs, err := ft.rdb.FunctionList(ctx, redis.FunctionListQuery{LibraryNamePattern: valkey.LibraryName}).Result()
	if err != nil || len(libs) != 1 {
		f.Fatalf("valkey library: %v %v", libs, err)
	}
	for _, fn := range libs[0].Functions {
		ft.vkFns[strings.TrimPrefix(fn.Name, "sc_")] = true
	}
	if path := os.Getenv("SPENDCAP_FUZZ_LOG"); path != "" {
		if ft.log, err = os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { _ = ft.log.Close() })
	}
	return ft
}

// pick is the function a fuzzed name stands for: itself when it is one, else one chosen by its hash,
// so that mutated names still reach every function.
func (ft *fuzzTarget) pick(name string) string {
	if _, ok := ft.types[name]; ok {
		return name
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return ft.fns[h.Sum32()%uint32(len(ft.fns))]
}

// args are the arguments of a fuzzed call: value as the whole argument document when arg is empty,
// else the base arguments of fn with arg set to value (as JSON when it is JSON, else as a string).
func (ft *fuzzTarget) args(fn, arg, value string) string {
	if arg == "" {
		return value
	}
	a := map[string]json.RawMessage{}
	for name := range ft.types[fn] {
		if name == "at" {
			continue // now, unless the fuzzer sets at_ms
		}
		if v, ok := fuzzBase[name]; ok {
			a[name] = v
		}
	}
	arg = ft.argName(fn, arg)
	if json.Valid([]byte(value)) {
		a[arg] = json.RawMessage(value)
	} else {
		a[arg], _ = json.Marshal(value)
	}
	b, err := json.Marshal(a)
	if err != nil {
		return value
	}
	return string(b)
}

// argName is the argument a fuzzed name stands for: itself when fn takes it, else one of fn's chosen
// by its hash (unknown names reach both backends through whole documents).
func (ft *fuzzTarget) argName(fn, name string) string {
	var names []string
	for n := range ft.types[fn] {
		if n == "at" {
			n = "at_ms"
		}
		if n == name {
			return name
		}
		names = append(names, n)
	}
	if len(names) == 0 {
		return name
	}
	sort.Strings(names)
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return names[h.Sum32()%uint32(len(names))]
}

// pgRun makes the call in a transaction it rolls back, with the state of every table before and
// after it (after a failure, the state the caller would see).
func (ft *fuzzTarget) pgRun(fn, args string) (code string, before, after string, took time.Duration, err error) {
	tx, err := ft.pg.Begin(ctx)
	if err != nil {
		return "", "", "", 0, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = '`+callBound.String()+`'`); err != nil {
		return "", "", "", 0, err
	}
	if err := tx.QueryRow(ctx, ft.snapshot).Scan(&before); err != nil {
		return "", "", "", 0, err
	}
	if _, err := tx.Exec(ctx, `SAVEPOINT call`); err != nil {
		return "", "", "", 0, err
	}
	start := time.Now()
	_, callErr := runRaw(ctx, tx, ft.types, fn, args)
	took = time.Since(start)
	var pgErr *pgconn.PgError
	switch {
	case callErr == nil:
	case errors.Is(callErr, errUnsayable):
		return "", "", "", took, errUnsayable
	case errors.As(callErr, &pgErr):
		if !strings.HasPrefix(pgErr.Code, "SC") && !strings.Contains(pgErr.Where, "function") && pgErr.Code != "57014" {
			return "", "", "", took, errUnsayable // refused at bind, before the function ran
		}
		if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT call`); err != nil {
			return "", "", "", took, err
		}
		code = pgErr.Code
	default:
		return "", "", "", took, callErr // the connection, not the call: fail the input
	}
	if err := tx.QueryRow(ctx, ft.snapshot).Scan(&after); err != nil {
		return "", "", "", took, err
	}
	return code, before, after, took, nil
}

// vkSnapshot is every key of the database with its value and expiry.
func (ft *fuzzTarget) vkSnapshot() (string, error) {
	keys, err := ft.rdb.Keys(ctx, "*").Result()
	if err != nil {
		return "", err
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		dump, err := ft.rdb.Dump(ctx, k).Result()
		if err != nil {
			return "", err
		}
		exp, err := ft.rdb.Do(ctx, "PEXPIRETIME", k).Int64()
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%q %d %x\n", k, exp, dump)
	}
	return b.String(), nil
}

// vkRun rebuilds the fixtures and makes the call, with the state before and after it.
func (ft *fuzzTarget) vkRun(fn, args string) (code string, before, after string, took time.Duration, err error) {
	if err := ft.rdb.FlushDB(ctx).Err(); err != nil {
		return "", "", "", 0, err
	}
	for _, c := range fuzzFixtures {
		if err := ft.rdb.FCall(ctx, "sc_"+c.fn, []string{vkKey(c.args)}, c.args).Err(); err != nil {
			return "", "", "", 0, fmt.Errorf("valkey fixture %s %s: %w", c.fn, c.args, err)
		}
	}
	if before, err = ft.vkSnapshot(); err != nil {
		return "", "", "", 0, err
	}
	callCtx, cancel := context.WithTimeout(ctx, callBound)
	defer cancel()
	start := time.Now()
	keys, argv := vkCall(fn, args)
	callErr := ft.rdb.FCall(callCtx, "sc_"+fn, keys, argv...).Err()
	took = time.Since(start)
	var netErr net.Error
	if errors.Is(callErr, context.DeadlineExceeded) || errors.As(callErr, &netErr) && netErr.Timeout() {
		ft.killScript()
		return "hang", "", "", took, nil
	}
	if callErr != nil {
		code = codeOf(callErr)
	}
	if after, err = ft.vkSnapshot(); err != nil {
		return "", "", "", took, err
	}
	return code, before, after, took, nil
}

// vkCall is the keys and arguments of the Valkey call for raw arguments in the SQL shape: one
// document with the listing index's keys (list_budgets), or with the budget's or policy's key and, as the Go client passes them, the key of the
// parent it names (create_budget, set_parent: the fixtures' budgets have no parents, so that is
// the chain), except for a batch whose items are an array, which goes as the library takes it
// (the other fields, then one argument per item, with the keys of every budget an item names).
func vkCall(fn, args string) ([]string, []any) {
	if fn == "list_budgets" {
		return []string{"sc:ix:ids", "sc:ix:util"}, []any{args} // the server's listing index
	}
	var a map[string]json.RawMessage
	var items []json.RawMessage
	if fn != "report_usage_batch" || json.Unmarshal([]byte(args), &a) != nil || json.Unmarshal(a["items"], &items) != nil {
		keys := []string{vkKeyFor(fn, args)}
		var p struct {
			ParentID any `json:"parent_id"`
		}
		_ = json.Unmarshal([]byte(args), &p)
		if s, ok := p.ParentID.(string); ok && valkey.Key(s) != keys[0] {
			keys = append(keys, valkey.Key(s))
		}
		return keys, []any{args}
	}
	delete(a, "items")
	head, _ := json.Marshal(a)
	argv := []any{string(head)}
	var keys []string
	for _, raw := range items {
		argv = append(argv, string(raw))
		var it struct {
			BudgetID   any   `json:"budget_id"`
			AlsoCharge []any `json:"also_charge"`
		}
		_ = json.Unmarshal(raw, &it)
		for _, id := range append([]any{it.BudgetID}, it.AlsoCharge...) {
			if s, ok := id.(string); ok && !slices.Contains(keys, valkey.Key(s)) {
				keys = append(keys, valkey.Key(s))
			}
		}
	}
	if len(keys) == 0 {
		keys = []string{valkey.Key("b1")}
	}
	return keys, argv
}

// killScript stops a script that outran the bound, so the server serves the next call.
func (ft *fuzzTarget) killScript() {
	opts := *ft.rdb.Options()
	c := redis.NewClient(&opts)
	defer c.Close()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if err := c.Do(ctx, "FUNCTION", "KILL").Err(); err != nil && strings.Contains(err.Error(), "NOTBUSY") {
			return
		}
	}
}

func (ft *fuzzTarget) record(backend, fn, code string) {
	if ft.log == nil {
		return
	}
	if code == "" {
		code = "ok"
	}
	fmt.Fprintf(ft.log, "%s %s %s\n", backend, fn, code)
}

// incomparableInstant reports whether the arguments give an instant the backends cannot be compared
// on: a string, which SQL reads as a timestamp (timestamptz takes text) and Valkey refuses, or a
// fraction of a millisecond, which a timestamptz holds and Valkey refuses (at_ms is whole
// milliseconds).
func incomparableInstant(args string) bool {
	var a map[string]json.RawMessage
	if json.Unmarshal([]byte(args), &a) != nil {
		return false
	}
	for _, k := range []string{"at_ms", "reset_anchor"} {
		v := a[k]
		var f float64
		if len(v) > 0 && (v[0] == '"' || json.Unmarshal(v, &f) == nil && f != math.Trunc(f)) {
			return true
		}
	}
	return false
}

// spendcapCode reports whether a call's outcome is one the SPEC names: success or SC001..SC007.
func spendcapCode(code string) bool {
	return code == "" || len(code) == 5 && code >= "SC001" && code <= "SC007"
}

// FuzzHostileCalls calls every function of both backends with arbitrary arguments (a whole document,
// or valid arguments with one replaced) against the same state and holds them to three rules: only spendcap codes come back, a failing call changes
// nothing (every table, every key and expiry compared), and every call ends within callBound.
// Where both backends ran the call, they answer the same code. `make test` runs the seed corpus
// (testdata/fuzz/FuzzHostileCalls and the raw cases); `make fuzz` searches for more.
func FuzzHostileCalls(f *testing.F) {
	for _, c := range append(append([]rawCall{}, rawCases...), fuzzFixtures...) {
		f.Add(c.fn, "", c.args)
	}
	ft := newFuzzTarget(f)
	f.Fuzz(func(t *testing.T, name, arg, value string) {
		fn := ft.pick(name)
		args := ft.args(fn, arg, value)
		codes := map[string]string{}
		check := func(backend, code, before, after string, took time.Duration) {
			ft.record(backend, fn, code)
			codes[backend] = code
			switch {
			case code == "hang" || code == "57014" || took > callBound:
				t.Errorf("%s %s %s: still running after %v", backend, fn, args, took.Round(time.Millisecond))
			case !spendcapCode(code):
				t.Errorf("%s %s %s: answered %s, not a spendcap code", backend, fn, args, code)
			case code != "" && before != after:
				t.Errorf("%s %s %s: failed with %s and changed the data:\nbefore:\n%s\nafter:\n%s", backend, fn, args, code, before, after)
			}
		}
		code, before, after, took, err := ft.pgRun(fn, args)
		switch {
		case errors.Is(err, errUnsayable):
			ft.record("postgres", fn, "unsayable")
		case err != nil:
			t.Fatalf("postgres %s %s: %v", fn, args, err)
		default:
			check("postgres", code, before, after, took)
		}
		if ft.vkFns[fn] {
			code, before, after, took, err := ft.vkRun(fn, args)
			if err != nil {
				t.Fatalf("valkey %s %s: %v", fn, args, err)
			}
			check("valkey", code, before, after, took)
		}
		// audit takes max_rows on Postgres only (Valkey audits one budget per call): its codes differ.
		if pg, ok := codes["postgres"]; ok && !incomparableInstant(args) && fn != "audit" {
			if vk, ok := codes["valkey"]; ok && pg != vk {
				t.Errorf("%s %s: postgres answered %q, valkey %q", fn, args, pg, vk)
			}
		}
	})
}
