package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spendcap/spendcap/internal/bindgen"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

// rawCall is one call with arguments in the Valkey JSON shape (docs/semantics.md#valkey), which the Postgres side
// turns into named SQL arguments. These cases reach inputs the typed Go API cannot express.
type rawCall struct {
	fn   string
	args string
	want string // "" for success, else the spendcap error code
}

// rawCases run in order on one fresh backend of each kind; every result must agree.
var rawCases = []rawCall{
	{"create_budget", `{"budget_id": "b1", "hard_limits": {"t": 100}, "at_ms": 1773144000000}`, ""},
	{"create_budget", `{"budget_id": "f", "hard_limits": {"t": 1.5}}`, "SC002"},
	{"create_budget", `{"budget_id": "f", "hard_limits": {"t": "5"}}`, "SC002"},
	{"create_budget", `{"budget_id": "f", "hard_limits": {"t": true}}`, "SC002"},
	{"create_budget", `{"budget_id": "f", "soft_limits": {"t": null}}`, "SC002"},
	{"create_budget", `{"budget_id": "f", "hard_limits": [1]}`, "SC002"},
	{"create_budget", `{"budget_id": "f", "hard_limits": 5}`, "SC002"},
	{"create_budget", `{"budget_id": "f", "hard_limits": "x"}`, "SC002"},
	{"create_budget", `{"budget_id": "f", "hard_limits": {"t": 9007199254740992}}`, "SC002"},
	{"create_budget", `{"budget_id": "f", "hard_limits": {"t": -0.5}}`, "SC002"},
	{"create_budget", `{"budget_id": "f", "dedup_ttl_seconds": 0}`, "SC002"},
	{"create_budget", `{"budget_id": "f", "reset_every": ""}`, "SC002"},
	// Whole numbers are accepted however they are written.
	{"create_budget", `{"budget_id": "w", "hard_limits": {"t": 1.0, "u": 1e3, "v": -0}, "at_ms": 1773144000000}`, ""},
	{"create_budget", `{"budget_id": "w", "hard_limits": {"t": 1, "u": 1000, "v": 0}, "at_ms": 1773144000000}`, ""},
	{"create_budget", `{"budget_id": "w", "hard_limits": {"t": 2, "u": 1000, "v": 0}}`, "SC005"},
	// Null optional arguments take their defaults.
	{"create_budget", `{"budget_id": "n", "hard_limits": null, "mode": null, "reset_timezone": null, "dedup_ttl_seconds": null, "at_ms": 1773144000000}`, ""},
	{"report_usage", `{"budget_id": "b1", "deltas": {"t": 0.5}}`, "SC002"},
	{"report_usage", `{"budget_id": "b1", "deltas": {}}`, "SC002"},
	{"report_usage", `{"budget_id": "b1", "deltas": {"t": 1}, "dedup_key": "", "at_ms": 1773144000000}`, ""},
	{"report_usage", `{"budget_id": "b1", "deltas": {"t": 1}, "dedup_key": "", "at_ms": 1773144000000}`, ""},
	// Calls the fast paths would take were their input valid: each must fail as the general path does.
	{"report_usage", `{"budget_id": "b1", "deltas": {"": 1}, "at_ms": 1773144000000}`, "SC002"},
	{"report_usage", `{"budget_id": "b1", "deltas": {"ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd": 1}, "at_ms": 1773144000000}`, "SC002"},
	{"report_usage", `{"budget_id": "b1", "deltas": {"t/x": 1}, "at_ms": 1773144000000}`, "SC002"},
	{"report_usage", `{"budget_id": "b1", "deltas": {"t": -1}, "at_ms": 1773144000000}`, "SC002"},
	{"report_usage", `{"budget_id": "b1", "deltas": {"t": 9007199254740992}, "at_ms": 1773144000000}`, "SC002"},
	{"report_usage", `{"budget_id": "b1", "deltas": {"d0": 1, "d1": 1, "d2": 1, "d3": 1, "d4": 1, "d5": 1, "d6": 1, "d7": 1, "d8": 1, "d9": 1, "d10": 1, "d11": 1, "d12": 1, "d13": 1, "d14": 1, "d15": 1, "d16": 1, "d17": 1, "d18": 1, "d19": 1, "d20": 1, "d21": 1, "d22": 1, "d23": 1, "d24": 1, "d25": 1, "d26": 1, "d27": 1, "d28": 1, "d29": 1, "d30": 1, "d31": 1, "d32": 1}, "at_ms": 1773144000000}`, "SC002"},
	{"report_usage", `{"budget_id": "b1", "deltas": {"t": 1}, "dedup_key": "k{1}", "at_ms": 1773144000000}`, "SC002"},
	// A whole number written as 1e0 or 1.0 takes the general path and counts as 1.
	{"report_usage", `{"budget_id": "b1", "deltas": {"t": 1e0, "u": 1.0}, "dedup_key": "w1", "at_ms": 1773144000000}`, ""},
	{"report_usage", `{"budget_id": "b1", "deltas": {"t": 1, "u": 1}, "dedup_key": "w1", "at_ms": 1773144000000}`, ""},
	{"record_spend", `{"budget_id": "b1", "execution_id": "e", "deltas": {"t": 1, "u": 2}, "idempotency_key": "k", "at_ms": 1773144000000}`, ""},
	{"record_spend", `{"budget_id": "b1", "execution_id": "e", "deltas": {"u": 2.0, "t": 1e0}, "idempotency_key": "k", "at_ms": 1773144000000}`, ""},
	{"record_spend", `{"budget_id": "b1", "execution_id": "e", "deltas": {"t": 2}, "idempotency_key": "k", "at_ms": 1773144000000}`, "SC003"},
	{"reserve", `{"budget_id": "b1", "reservation_id": "r", "amounts": {"t": 1}, "ttl_seconds": 0}`, "SC002"},
	{"reserve", `{"budget_id": "b1", "reservation_id": "r", "amounts": {"t": 1}, "ttl_seconds": 86400, "at_ms": 1773144000000}`, ""},
	{"settle", `{"budget_id": "b1", "reservation_id": "r", "actual": {"t": "1"}}`, "SC002"},
	{"settle", `{"budget_id": "b1", "reservation_id": "r", "actual": {}, "at_ms": 1773144000000}`, ""},
	{"budget_history", `{"budget_id": "b1", "max_rows": 0}`, "SC002"},
	{"budget_status", `{"budget_id": "b1", "at_ms": 1773144000000}`, ""},
	{"set_limits", `{"budget_id": "b1", "mode": "strict"}`, "SC002"},
	{"delete_budget", `{"budget_id": "w"}`, ""},
	{"create_quota_policy", `{"policy_id": "q", "window_seconds": 10, "max_requests": 2, "max_concurrent": null, "at_ms": 1773144000000}`, ""},
	{"create_quota_policy", `{"policy_id": "q", "window_seconds": 10, "max_requests": 2, "at_ms": 1773144000000}`, ""},
	{"create_quota_policy", `{"policy_id": "q2", "max_requests": 2}`, "SC002"},
	{"create_quota_policy", `{"policy_id": "q2", "lease_seconds": 0}`, "SC002"},
	{"acquire_quota", `{"policy_id": "q", "holder_id": "h", "at_ms": 1773144000000}`, ""},
	{"acquire_quota", `{"policy_id": "nope", "holder_id": "h"}`, "SC006"},
	{"renew_quota", `{"policy_id": "q", "holder_id": "other", "at_ms": 1773144000000}`, "SC002"},
	{"quota_status", `{"policy_id": "q", "at_ms": 1773144000000}`, ""},

	// Hostile input (issue "Hostile input"): instants far outside any real time, quantities past the
	// range and numbers a Valkey command would refuse. Each is SC002 naming the argument, and writes
	// nothing (the calls after them see the budget unchanged).
	{"report_usage", `{"budget_id": "b1", "deltas": {"t": 1}, "at_ms": 1e25}`, "SC002"},
	{"report_usage", `{"budget_id": "b1", "deltas": {"t": 1}, "at_ms": 2e19}`, "SC002"},
	{"report_usage", `{"budget_id": "b1", "deltas": {"t": 1}, "at_ms": 9e299}`, "SC002"},
	{"report_usage", `{"budget_id": "b1", "deltas": {"t": 1}, "at_ms": -1}`, "SC002"},
	{"report_usage", `{"budget_id": "b1", "deltas": {"t": 1}, "at_ms": -1e25}`, "SC002"},
	{"report_usage", `{"budget_id": "b1", "deltas": {"t": 1}, "at_ms": "infinity"}`, "SC002"},
	{"report_usage", `{"budget_id": "b1", "deltas": {"t": 1}, "at_ms": 253402300800000}`, "SC002"},
	{"reset_budget", `{"budget_id": "b1", "at_ms": 1e25}`, "SC002"},
	{"budget_status", `{"budget_id": "b1", "at_ms": 2e19}`, "SC002"},
	{"budget_history", `{"budget_id": "b1", "at_ms": 9e299}`, "SC002"},
	{"settle", `{"budget_id": "b1", "reservation_id": "r", "actual": {}, "at_ms": 1e25}`, "SC002"},
	{"acquire_quota", `{"policy_id": "q", "holder_id": "h", "at_ms": 1e25}`, "SC002"},
	{"create_budget", `{"budget_id": "x", "reset_every": "1 day", "reset_anchor": -1e25}`, "SC002"},
	{"report_usage", `{"budget_id": "b1", "deltas": {"t": 1e19}, "at_ms": 1773144000000}`, "SC002"},
	{"report_usage", `{"budget_id": "b1", "deltas": {"t": -1e19}, "at_ms": 1773144000000}`, "SC002"},
	{"report_usage", `{"budget_id": "b1", "deltas": {"t": 9223372036854775808}, "at_ms": 1773144000000}`, "SC002"},
	{"report_usage", `{"budget_id": "b1", "deltas": {"t": 9007199254740992}, "at_ms": 1773144000000}`, "SC002"},
	// Fractions a double rounds away are still fractions: SQL's numerics see them, and Valkey reads the
	// number as written. Digits inside strings are not numbers.
	{"report_usage", `{"budget_id": "b1", "deltas": {"t": 4503599627370496.5}, "at_ms": 1773144000000}`, "SC002"},
	{"report_usage", `{"budget_id": "b1", "deltas": {"t": 1.0000000000000001}, "at_ms": 1773144000000}`, "SC002"},
	{"check_usage", `{"budget_id": "x1.5e", "deltas": {"t": 1}}`, "SC001"},
	{"check_usage", `{"budget_id": "b1", "deltas": {"t": 25e-1}}`, "SC002"},
	{"check_usage", `{"budget_id": "b1", "deltas": {"t": 2.50e1}}`, ""},
	{"record_spend", `{"budget_id": "b1", "execution_id": "e2", "deltas": {"t": 1e19}, "at_ms": 1773144000000}`, "SC002"},
	{"create_budget", `{"budget_id": "f", "hard_limits": {"t": 1e19}}`, "SC002"},
	{"reserve", `{"budget_id": "b1", "reservation_id": "r2", "amounts": {"t": 1e19}, "ttl_seconds": 60, "at_ms": 1773144000000}`, "SC002"},
	{"settle", `{"budget_id": "b1", "reservation_id": "r", "actual": {"t": -1e19}, "at_ms": 1773144000000}`, "SC002"},
	// Numbers in the normal form: 1e3, 0.0000, +1 is not JSON, null ttl and at take defaults.
	{"reserve", `{"budget_id": "b1", "reservation_id": "r3", "amounts": {"t": 1e1, "u": 0.0000}, "ttl_seconds": 60, "at_ms": 1773144000000}`, ""},
	{"settle", `{"budget_id": "b1", "reservation_id": "r3", "actual": {"t": -0}, "at_ms": 1773144000000}`, ""},
	// The budget after every refusal above: only the successful calls counted.
	{"budget_status", `{"budget_id": "b1", "at_ms": 1773144000000}`, ""},
	// The operator's reads: recent events (on Valkey, of the budget's slot group) and a budget's
	// live reservations.
	{"recent_events", `{"budget_id": "b1", "kind": "threshold", "max_rows": 5}`, ""},
	{"recent_events", `{"budget_id": "b1", "kind": "spent"}`, "SC002"},
	{"recent_events", `{"budget_id": "b1", "before_id": 0}`, "SC002"},
	{"recent_events", `{"budget_id": "b1", "max_rows": 1001}`, "SC002"},
	{"recent_events", `{"budget_id": "a b"}`, "SC002"},
	{"budget_reservations", `{"budget_id": "b1"}`, ""},
	{"budget_reservations", `{"budget_id": "b1", "max_rows": 0}`, "SC002"},
	{"budget_reservations", `{"budget_id": "nobody"}`, "SC001"},
	{"list_quota_policies", `{"id_prefix": "q", "at_ms": 1773144000000}`, ""},
	{"list_quota_policies", `{"id_prefix": "a{"}`, "SC002"},
	{"list_quota_policies", `{"after": "x y"}`, "SC002"},
	{"list_quota_policies", `{"max_rows": 0}`, "SC002"},
}

// pgRaw runs a raw call through SQL: JSON values of jsonb arguments go as jsonb, `*_ms` instants
// and times as timestamptz, and the rest as the argument's SQL type.
func pgRaw(t *testing.T, db *pgxpool.Pool, types map[string]map[string]string, c rawCall) (string, error) {
	out, err := runRaw(ctx, db, types, c.fn, c.args)
	if errors.Is(err, errUnsayable) {
		t.Fatal(err)
	}
	return out, err
}

// querier is what runRaw needs of a pool, a connection or a transaction.
type querier interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}

// errUnsayable marks arguments the SQL side cannot pass to the function at all (not an object, a
// name the function lacks, a value its parameter type refuses at bind): the function never ran.
var errUnsayable = errors.New("not expressible as SQL arguments")

// pgRawQuery is the SQL call for raw arguments in the Valkey shape, or an error when SQL cannot
// express them (not an object, an argument the function lacks, a number given for a text argument).
func pgRawQuery(types map[string]map[string]string, fn, args string) (string, []any, error) {
	var a map[string]json.RawMessage
	if err := json.Unmarshal([]byte(args), &a); err != nil {
		return "", nil, fmt.Errorf("%s arguments %s: %w", fn, args, err)
	}
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var names []string
	var values []any
	for _, k := range keys {
		v := a[k]
		if string(v) == "null" {
			continue
		}
		name := k
		if k == "at_ms" {
			name = "at"
		}
		typ, ok := types[fn][name]
		if !ok {
			return "", nil, fmt.Errorf("%s has no argument %s", fn, name)
		}
		switch {
		case typ == "jsonb":
			values = append(values, string(v))
		case typ == "timestamp with time zone":
			at, err := pgInstant(v)
			if err != nil {
				return "", nil, fmt.Errorf("%s %s: %w", fn, k, err)
			}
			values = append(values, at)
		case typ == "text":
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return "", nil, fmt.Errorf("%s %s: %w", fn, k, err)
			}
			values = append(values, s)
		default:
			values = append(values, string(v)) // numbers, cast by PostgreSQL
		}
		names = append(names, fmt.Sprintf("%s => $%d::%s", name, len(values), typ))
	}
	return `SELECT to_jsonb(r)::text FROM spendcap.` + fn + `(` + strings.Join(names, ", ") + `) AS r`, values, nil
}

// pgInstant is the timestamptz nearest to an at_ms value: milliseconds PostgreSQL can hold as
// themselves, numbers past its range as ±infinity, and strings as written (cast by PostgreSQL).
func pgInstant(v json.RawMessage) (any, error) {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s, nil
	}
	var f float64
	if err := json.Unmarshal(v, &f); err != nil {
		return nil, err
	}
	const pgMaxMs, pgMinMs = 9.2e15, -2.1e14 // about 294276 AD and 4713 BC
	switch {
	case f > pgMaxMs:
		return "infinity", nil
	case f < pgMinMs:
		return "-infinity", nil
	}
	var ms int64
	if err := json.Unmarshal(v, &ms); err != nil {
		return time.UnixMilli(int64(f)).UTC(), nil
	}
	return time.UnixMilli(ms).UTC(), nil
}

func TestRawArgumentsAreJudgedAlikeByBothBackends(t *testing.T) {
	t.Parallel()
	url := testenv.NewDatabase(t)
	db := testenv.PoolFor(t, url)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	fns, err := bindgen.Introspect(ctx, conn, "spendcap")
	_ = conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]map[string]string{}
	for _, f := range fns {
		types[f.Name] = map[string]string{}
		for _, a := range f.Args {
			types[f.Name][a.Name] = a.Type
		}
	}
	rdb := testenv.Valkey(t)
	if _, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true, AllowReplay: true}); err != nil {
		t.Fatal(err)
	}
	for i, c := range rawCases {
		_, pgErr := pgRaw(t, db, types, c)
		cmd := rdb.FCall(ctx, "sc_"+c.fn, []string{vkKeyFor(c.fn, c.args)}, c.args)
		vkErr := cmd.Err()
		if got := codeOf(pgErr); got != c.want {
			t.Errorf("case %d %s %s: postgres gave %q (%v), want %q", i, c.fn, c.args, got, pgErr, c.want)
		}
		if got := codeOf(vkErr); got != c.want {
			t.Errorf("case %d %s %s: valkey gave %q (%v), want %q", i, c.fn, c.args, got, vkErr, c.want)
		}
	}
	// The successful calls left both budgets in the same state.
	st := mustStatus(t, db, "b1", ptr(time.UnixMilli(1773144000000)))
	if st.Usage["t"] != 4 || st.Usage["u"] != 3 || len(st.Reserved) != 0 {
		t.Errorf("postgres b1 after the calls: usage %v reserved %v", st.Usage, st.Reserved)
	}
	raw, err := rdb.FCallRO(ctx, "sc_budget_status", []string{valkey.Key("b1")}, `{"budget_id": "b1", "at_ms": 1773144000000}`).Text()
	if err != nil || !strings.Contains(raw, `"usage":{"t":4,"u":3}`) || !strings.Contains(raw, `"reserved":{}`) {
		t.Errorf("valkey b1 after the calls: %s %v", raw, err)
	}
}
