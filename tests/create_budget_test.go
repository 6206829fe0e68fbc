package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spendcap/spendcap/internal/testenv"
)

type created struct {
	BudgetID    string     `db:"budget_id"`
	Created     bool       `db:"created"`
	WindowStart time.Time  `db:"window_start"`
	NextResetAt *time.Time `db:"next_reset_at"`
}

// createBudget calls create_budget with the named arguments given as name, value pairs.
func createBudget(db *pgxpool.Pool, args ...any) (created, error) {
	var names []string
	var values []any
	for i := 0; i < len(args); i += 2 {
		names = append(names, args[i].(string)+" => $"+itoa(len(values)+1))
		values = append(values, args[i+1])
	}
	var c created
	err := db.QueryRow(ctx, `SELECT budget_id, created, window_start, next_reset_at FROM spendcap.create_budget(`+
		strings.Join(names, ", ")+`)`, values...).Scan(&c.BudgetID, &c.Created, &c.WindowStart, &c.NextResetAt)
	return c, err
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

func TestCreateBudgetWithDefaults(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	at := ts(t, "2026-03-10T12:34:56.789Z")
	c, err := createBudget(db, "budget_id", "b1", "at", at)
	if err != nil {
		t.Fatal(err)
	}
	if !equalCreated(c, created{BudgetID: "b1", Created: true, WindowStart: at}) {
		t.Errorf("create_budget = %+v", c)
	}
	st := mustStatus(t, db, "b1", &at)
	want := status{BudgetID: "b1", HardLimits: map[string]int64{}, SoftLimits: map[string]int64{}, ResetTimezone: "UTC",
		Mode: "enforce", DedupTTLSeconds: 86400, WindowSeq: 1, WindowStart: at, Usage: map[string]int64{},
		Reserved: map[string]int64{}, Remaining: map[string]int64{}, CreatedAt: at, UpdatedAt: at}
	if !equalStatus(st, want) {
		t.Errorf("budget_status =\n%+v\nwant\n%+v", st, want)
	}
}

func TestCreateBudgetStoresEveryField(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	at := ts(t, "2026-03-10T12:00:00Z")
	anchor := ts(t, "2026-01-31T00:00:00Z")
	_, err := createBudget(db, "budget_id", "b1", "hard_limits", `{"tokens": 1000, "usd_micros": 0}`,
		"soft_limits", `{"tokens": 800.0, "requests": 5}`, "reset_every", " 1 Months ", "reset_timezone", "UTC",
		"reset_anchor", anchor, "mode", "observe", "scope_type", "tenant", "scope_id", "t-1", "dedup_ttl_seconds", 60, "at", at)
	if err != nil {
		t.Fatal(err)
	}
	st := mustStatus(t, db, "b1", &at)
	want := status{BudgetID: "b1", HardLimits: map[string]int64{"tokens": 1000, "usd_micros": 0},
		SoftLimits: map[string]int64{"tokens": 800, "requests": 5}, ResetEvery: ptr("1 month"), ResetTimezone: "UTC",
		ResetAnchor: &anchor, Mode: "observe", ScopeType: ptr("tenant"), ScopeID: ptr("t-1"), DedupTTLSeconds: 60,
		WindowSeq: 1, WindowStart: ts(t, "2026-02-28T00:00:00Z"), NextResetAt: ptr(ts(t, "2026-03-31T00:00:00Z")),
		Usage: map[string]int64{}, Reserved: map[string]int64{}, Remaining: map[string]int64{"tokens": 1000, "usd_micros": 0},
		CreatedAt: at, UpdatedAt: at}
	if !equalStatus(st, want) {
		t.Errorf("budget_status =\n%+v\nwant\n%+v", st, want)
	}
}

func TestCreateBudgetCanonicalisesResetEvery(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	for i, tc := range []struct{ in, want string }{
		{"1 month", "1 month"}, {"1 months", "1 month"}, {" 15 Minutes ", "15 minutes"}, {"15 minute", "15 minutes"},
		{"2 WEEKS", "2 weeks"}, {"10000 seconds", "10000 seconds"}, {"1 YEAR", "1 year"}, {"3\thours", "3 hours"},
		{"1 day", "1 day"},
	} {
		id := "b" + itoa(i)
		if _, err := createBudget(db, "budget_id", id, "reset_every", tc.in); err != nil {
			t.Fatalf("reset_every %q: %v", tc.in, err)
		}
		if st := mustStatus(t, db, id, nil); st.ResetEvery == nil || *st.ResetEvery != tc.want {
			t.Errorf("reset_every %q stored as %v, want %q", tc.in, st.ResetEvery, tc.want)
		}
		// The same period spelled differently is the same definition.
		if c, err := createBudget(db, "budget_id", id, "reset_every", tc.want); err != nil || c.Created {
			t.Errorf("repeat with %q: created=%v err=%v, want created=false", tc.want, c.Created, err)
		}
	}
}

func TestCreateBudgetRejectsInvalidArgumentsWritingNothing(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	long := strings.Repeat("x", 129)
	var many []string
	for i := 0; i < 33; i++ {
		many = append(many, `"d`+itoa(i)+`": 1`)
	}
	for _, tc := range []struct {
		name string
		args []any
		arg  string
	}{
		{"null id", []any{"budget_id", nil}, "budget_id"},
		{"empty id", []any{"budget_id", ""}, "budget_id"},
		{"id of 129 bytes", []any{"budget_id", long}, "budget_id"},
		{"id with {", []any{"budget_id", "a{b"}, "budget_id"},
		{"id with }", []any{"budget_id", "a}b"}, "budget_id"},
		{"id with a space", []any{"budget_id", "a b"}, "budget_id"},
		{"id with a control byte", []any{"budget_id", "a\tb"}, "budget_id"},
		{"id with non-ASCII", []any{"budget_id", "café"}, "budget_id"},
		{"limits not an object", []any{"budget_id", "b", "hard_limits", `[1]`}, "hard_limits"},
		{"limits a number", []any{"budget_id", "b", "hard_limits", `5`}, "hard_limits"},
		{"33 dimensions", []any{"budget_id", "b", "hard_limits", "{" + strings.Join(many, ",") + "}"}, "hard_limits"},
		{"empty dimension name", []any{"budget_id", "b", "hard_limits", `{"": 1}`}, "hard_limits"},
		{"dimension name of 65 bytes", []any{"budget_id", "b", "hard_limits", `{"` + strings.Repeat("d", 65) + `": 1}`}, "hard_limits"},
		{"dimension name with /", []any{"budget_id", "b", "hard_limits", `{"a/b": 1}`}, "hard_limits"},
		{"dimension name with a space", []any{"budget_id", "b", "soft_limits", `{"a b": 1}`}, "soft_limits"},
		{"fractional quantity", []any{"budget_id", "b", "hard_limits", `{"t": 1.5}`}, "hard_limits"},
		{"negative quantity", []any{"budget_id", "b", "hard_limits", `{"t": -1}`}, "hard_limits"},
		{"quantity above MAX_QTY", []any{"budget_id", "b", "hard_limits", `{"t": 9007199254740992}`}, "hard_limits"},
		{"string quantity", []any{"budget_id", "b", "soft_limits", `{"t": "5"}`}, "soft_limits"},
		{"boolean quantity", []any{"budget_id", "b", "hard_limits", `{"t": true}`}, "hard_limits"},
		{"null quantity", []any{"budget_id", "b", "hard_limits", `{"t": null}`}, "hard_limits"},
		{"soft above hard", []any{"budget_id", "b", "hard_limits", `{"t": 10}`, "soft_limits", `{"t": 11}`}, "soft_limits"},
		{"zero periods", []any{"budget_id", "b", "reset_every", "0 days"}, "reset_every"},
		{"10001 periods", []any{"budget_id", "b", "reset_every", "10001 days"}, "reset_every"},
		{"period without n", []any{"budget_id", "b", "reset_every", "month"}, "reset_every"},
		{"unknown unit", []any{"budget_id", "b", "reset_every", "1 fortnight"}, "reset_every"},
		{"fractional period", []any{"budget_id", "b", "reset_every", "1.5 days"}, "reset_every"},
		{"negative period", []any{"budget_id", "b", "reset_every", "-1 day"}, "reset_every"},
		{"empty period", []any{"budget_id", "b", "reset_every", ""}, "reset_every"},
		{"period without space", []any{"budget_id", "b", "reset_every", "1day"}, "reset_every"},
		{"anchor without period", []any{"budget_id", "b", "reset_anchor", time.Now()}, "reset_anchor"},
		{"unknown zone", []any{"budget_id", "b", "reset_timezone", "Mars/Olympus_Mons"}, "reset_timezone"},
		{"zone in the wrong case", []any{"budget_id", "b", "reset_timezone", "america/new_york"}, "reset_timezone"},
		{"POSIX zone spec", []any{"budget_id", "b", "reset_timezone", "XYZ3"}, "reset_timezone"},
		{"offset beyond 14:00", []any{"budget_id", "b", "reset_timezone", "+14:30"}, "reset_timezone"},
		{"offset without colon", []any{"budget_id", "b", "reset_timezone", "+0530"}, "reset_timezone"},
		{"unknown mode", []any{"budget_id", "b", "mode", "strict"}, "mode"},
		{"ttl 0", []any{"budget_id", "b", "dedup_ttl_seconds", 0}, "dedup_ttl_seconds"},
		{"ttl above 30 days", []any{"budget_id", "b", "dedup_ttl_seconds", 2592001}, "dedup_ttl_seconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := createBudget(db, tc.args...)
			requireCode(t, err, "SC002", tc.arg+": ")
			if got := tableCounts(t, db); got != "budgets=0 history=0 dedup=0 ledger=0 reservations=0" {
				t.Errorf("after SC002: %s", got)
			}
		})
	}
}

func TestCreateBudgetAcceptsBoundaryValues(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	var dims []string
	for i := 0; i < 32; i++ {
		dims = append(dims, `"d`+itoa(i)+`": 9007199254740991`)
	}
	for i, args := range [][]any{
		{"budget_id", strings.Repeat("x", 128)},
		{"budget_id", "!#$%&'()*+,-./:;<=>?@[]^_`|~\"\\"},
		{"hard_limits", "{" + strings.Join(dims, ",") + "}"},
		{"hard_limits", `{"` + strings.Repeat("d", 64) + `": 0, "A-Z_a.z:0-9": 1e3}`},
		{"hard_limits", `{"t": 10}`, "soft_limits", `{"t": 10}`},
		{"soft_limits", `{"t": 10}`},
		{"reset_every", "10000 years"},
		{"reset_timezone", "+14:00", "reset_every", "1 day"},
		{"reset_timezone", "-12:00", "reset_every", "1 day"},
		{"reset_timezone", "Asia/Kolkata", "reset_every", "1 day"},
		{"dedup_ttl_seconds", 1},
		{"dedup_ttl_seconds", 2592000},
		{"mode", "observe"},
	} {
		if len(args)%2 == 1 || args[0] != "budget_id" {
			args = append([]any{"budget_id", "ok-" + itoa(i)}, args...)
		}
		if c, err := createBudget(db, args...); err != nil || !c.Created {
			t.Errorf("create_budget(%v): created=%v err=%v", args, c.Created, err)
		}
	}
}

func TestCreateBudgetAgainWithSameDefinitionChangesNothing(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	at := ts(t, "2026-03-10T12:00:00Z")
	def := []any{"budget_id", "b1", "hard_limits", `{"t": 10}`, "soft_limits", `{"t": 5}`, "reset_every", "1 day",
		"reset_timezone", "Asia/Kolkata", "mode", "observe", "scope_type", "tenant", "scope_id", "x", "dedup_ttl_seconds", 600}
	first, err := createBudget(db, append(def, "at", at)...)
	if err != nil || !first.Created {
		t.Fatalf("first: %+v %v", first, err)
	}
	before := mustStatus(t, db, "b1", &at)
	later := at.Add(time.Hour)
	again, err := createBudget(db, append(def, "at", later)...)
	if err != nil {
		t.Fatal(err)
	}
	if !equalCreated(again, created{BudgetID: "b1", Created: false, WindowStart: first.WindowStart, NextResetAt: first.NextResetAt}) {
		t.Errorf("again = %+v, want created=false and the same window as %+v", again, first)
	}
	// A null anchor matches the stored default; passing that anchor explicitly matches too.
	if c, err := createBudget(db, append(def, "reset_anchor", *before.ResetAnchor, "at", later)...); err != nil || c.Created {
		t.Errorf("with the stored anchor: created=%v err=%v", c.Created, err)
	}
	if after := mustStatus(t, db, "b1", &at); !equalStatus(after, before) {
		t.Errorf("status changed:\n%+v\n%+v", after, before)
	}
}

func TestCreateBudgetWithDifferentDefinitionConflicts(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	base := map[string]any{"hard_limits": `{"t": 10}`, "soft_limits": `{"t": 5}`, "reset_every": "1 day",
		"reset_timezone": "UTC", "mode": "enforce", "scope_type": "tenant", "scope_id": "x", "dedup_ttl_seconds": 600}
	args := func(change map[string]any) []any {
		out := []any{"budget_id", "b1"}
		for k, v := range base {
			if c, ok := change[k]; ok {
				v = c
			}
			out = append(out, k, v)
		}
		for k, v := range change {
			if _, ok := base[k]; !ok {
				out = append(out, k, v)
			}
		}
		return out
	}
	if _, err := createBudget(db, args(nil)...); err != nil {
		t.Fatal(err)
	}
	before := tableCounts(t, db)
	st := mustStatus(t, db, "b1", nil)
	for _, change := range []map[string]any{
		{"hard_limits": `{"t": 11}`}, {"hard_limits": `{}`}, {"soft_limits": `{"t": 4}`}, {"reset_every": "2 days"},
		{"reset_every": nil}, {"reset_timezone": "Asia/Kolkata"}, {"mode": "observe"}, {"scope_type": nil},
		{"scope_id": "y"}, {"dedup_ttl_seconds": 601}, {"reset_anchor": st.ResetAnchor.Add(time.Hour)},
	} {
		_, err := createBudget(db, args(change)...)
		requireCode(t, err, "SC005", "budget_id: ")
	}
	if after := tableCounts(t, db); after != before {
		t.Errorf("after SC005: %s, before %s", after, before)
	}
	if after := mustStatus(t, db, "b1", nil); !equalStatus(after, st) {
		t.Errorf("status changed after SC005:\n%+v\n%+v", after, st)
	}
}

// TestCreateBudgetDefaultAnchors covers SPEC §4's default anchor for every unit.
func TestCreateBudgetDefaultAnchors(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	for i, tc := range []struct {
		name, every, zone, at    string
		anchor, start, nextReset string
	}{
		{"second", "1 second", "UTC", "2026-03-10T12:34:56.789Z",
			"2026-03-10T12:34:56Z", "2026-03-10T12:34:56Z", "2026-03-10T12:34:57Z"},
		{"minutes", "15 minutes", "UTC", "2026-03-10T12:34:56.789Z",
			"2026-03-10T12:34:00Z", "2026-03-10T12:34:00Z", "2026-03-10T12:49:00Z"},
		{"hour in a half-hour zone", "1 hour", "Asia/Kolkata", "2026-03-10T12:34:56Z",
			"2026-03-10T12:30:00Z", "2026-03-10T12:30:00Z", "2026-03-10T13:30:00Z"},
		{"hour in a fixed offset", "1 hour", "+05:45", "2026-03-10T12:34:56Z",
			"2026-03-10T12:15:00Z", "2026-03-10T12:15:00Z", "2026-03-10T13:15:00Z"},
		{"hour inside the DST overlap starts at the hour containing it", "1 hour", "America/New_York", "2026-11-01T05:30:00Z",
			"2026-11-01T05:00:00Z", "2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z"},
		{"day at local midnight", "1 day", "America/New_York", "2026-03-10T03:00:00Z",
			"2026-03-09T04:00:00Z", "2026-03-09T04:00:00Z", "2026-03-10T04:00:00Z"},
		{"day spanning the fall-back lasts 25 hours", "1 day", "America/New_York", "2026-11-01T12:00:00Z",
			"2026-11-01T04:00:00Z", "2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z"},
		{"day spanning the spring-forward lasts 23 hours", "1 day", "America/New_York", "2026-03-08T12:00:00Z",
			"2026-03-08T05:00:00Z", "2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z"},
		{"day in Kolkata", "1 day", "Asia/Kolkata", "2026-03-10T20:00:00Z",
			"2026-03-10T18:30:00Z", "2026-03-10T18:30:00Z", "2026-03-11T18:30:00Z"},
		{"week on Monday", "1 week", "UTC", "2026-03-12T08:00:00Z",
			"2026-03-09T00:00:00Z", "2026-03-09T00:00:00Z", "2026-03-16T00:00:00Z"},
		{"month on the 1st", "1 month", "UTC", "2026-03-31T23:59:59Z",
			"2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"},
		{"3 months anchor on the creation month", "3 months", "UTC", "2026-05-20T00:00:00Z",
			"2026-05-01T00:00:00Z", "2026-05-01T00:00:00Z", "2026-08-01T00:00:00Z"},
		{"month in New York", "1 month", "America/New_York", "2026-03-01T02:00:00Z",
			"2026-02-01T05:00:00Z", "2026-02-01T05:00:00Z", "2026-03-01T05:00:00Z"},
		{"year on January 1st", "1 year", "UTC", "2026-07-04T00:00:00Z",
			"2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "b" + itoa(i)
			at := ts(t, tc.at)
			c, err := createBudget(db, "budget_id", id, "reset_every", tc.every, "reset_timezone", tc.zone, "at", at)
			if err != nil {
				t.Fatal(err)
			}
			want := created{BudgetID: id, Created: true, WindowStart: ts(t, tc.start), NextResetAt: ptr(ts(t, tc.nextReset))}
			if !c.WindowStart.Equal(want.WindowStart) || !c.NextResetAt.Equal(*want.NextResetAt) || !c.Created {
				t.Errorf("create_budget = %v .. %v, want %v .. %v", c.WindowStart, *c.NextResetAt, want.WindowStart, *want.NextResetAt)
			}
			st := mustStatus(t, db, id, &at)
			if !st.ResetAnchor.Equal(ts(t, tc.anchor)) || st.WindowSeq != 1 {
				t.Errorf("reset_anchor = %v (window_seq %d), want %v", st.ResetAnchor, st.WindowSeq, tc.anchor)
			}
		})
	}
}

func TestCreateBudgetWithFutureAnchorOpensAWindowUntilTheAnchor(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	at := ts(t, "2026-03-10T12:00:00Z")
	anchor := ts(t, "2026-04-01T00:00:00Z")
	c, err := createBudget(db, "budget_id", "b1", "reset_every", "1 month", "reset_anchor", anchor, "at", at)
	if err != nil {
		t.Fatal(err)
	}
	if !c.WindowStart.Equal(at) || !c.NextResetAt.Equal(anchor) {
		t.Errorf("window = [%v, %v), want [created_at, anchor) = [%v, %v)", c.WindowStart, c.NextResetAt, at, anchor)
	}
}

func TestCreateBudgetWithPastAnchorCountsBoundariesFromTheAnchor(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	for i, tc := range []struct {
		anchor, every, zone, at, start, next string
	}{
		// Calendar months from Jan 31: Feb 28, Mar 31, Apr 30 (never stepping from the clamped day).
		{"2026-01-31T00:00:00Z", "1 month", "UTC", "2026-03-15T00:00:00Z", "2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"},
		{"2026-01-31T00:00:00Z", "1 month", "UTC", "2026-04-15T00:00:00Z", "2026-03-31T00:00:00Z", "2026-04-30T00:00:00Z"},
		{"2024-01-31T00:00:00Z", "1 month", "UTC", "2024-02-29T12:00:00Z", "2024-02-29T00:00:00Z", "2024-03-31T00:00:00Z"},
		// Yearly from Feb 29: Feb 28 in common years, Feb 29 again in leap years.
		{"2024-02-29T00:00:00Z", "1 year", "UTC", "2026-06-01T00:00:00Z", "2026-02-28T00:00:00Z", "2027-02-28T00:00:00Z"},
		{"2024-02-29T00:00:00Z", "1 year", "UTC", "2028-03-01T00:00:00Z", "2028-02-29T00:00:00Z", "2029-02-28T00:00:00Z"},
		// Elapsed units are exact multiples of the period from the anchor.
		{"2026-03-10T00:00:07Z", "15 minutes", "UTC", "2026-03-10T01:00:00Z", "2026-03-10T00:45:07Z", "2026-03-10T01:00:07Z"},
		// New York local 02:30 does not exist on 2026-03-08: it takes the offset before the jump (EST).
		{"2026-03-07T07:30:00Z", "1 day", "America/New_York", "2026-03-08T07:45:00Z", "2026-03-08T07:30:00Z", "2026-03-09T06:30:00Z"},
		// Local 01:30 happens twice on 2026-11-01: it takes the offset after the change (EST).
		{"2026-10-31T05:30:00Z", "1 day", "America/New_York", "2026-11-01T07:00:00Z", "2026-11-01T06:30:00Z", "2026-11-02T06:30:00Z"},
	} {
		id := "b" + itoa(i)
		c, err := createBudget(db, "budget_id", id, "reset_every", tc.every, "reset_timezone", tc.zone,
			"reset_anchor", ts(t, tc.anchor), "at", ts(t, tc.at))
		if err != nil {
			t.Fatal(err)
		}
		if !c.WindowStart.Equal(ts(t, tc.start)) || !c.NextResetAt.Equal(ts(t, tc.next)) {
			t.Errorf("anchor %s every %s in %s at %s: window [%v, %v), want [%s, %s)", tc.anchor, tc.every, tc.zone, tc.at,
				c.WindowStart.UTC(), c.NextResetAt.UTC(), tc.start, tc.next)
		}
	}
}

func equalCreated(a, b created) bool {
	return a.BudgetID == b.BudgetID && a.Created == b.Created && a.WindowStart.Equal(b.WindowStart) &&
		(a.NextResetAt == nil) == (b.NextResetAt == nil) && (a.NextResetAt == nil || a.NextResetAt.Equal(*b.NextResetAt))
}

func equalStatus(a, b status) bool {
	eqT := func(x, y *time.Time) bool { return (x == nil) == (y == nil) && (x == nil || x.Equal(*y)) }
	eqS := func(x, y *string) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	eqM := func(x, y map[string]int64) bool {
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || w != v {
				return false
			}
		}
		return true
	}
	return a.BudgetID == b.BudgetID && eqM(a.HardLimits, b.HardLimits) && eqM(a.SoftLimits, b.SoftLimits) &&
		eqS(a.ResetEvery, b.ResetEvery) && a.ResetTimezone == b.ResetTimezone && eqT(a.ResetAnchor, b.ResetAnchor) &&
		a.Mode == b.Mode && eqS(a.ScopeType, b.ScopeType) && eqS(a.ScopeID, b.ScopeID) &&
		a.DedupTTLSeconds == b.DedupTTLSeconds && a.WindowSeq == b.WindowSeq && a.WindowStart.Equal(b.WindowStart) &&
		eqT(a.NextResetAt, b.NextResetAt) && eqM(a.Usage, b.Usage) && eqM(a.Reserved, b.Reserved) &&
		eqM(a.Remaining, b.Remaining) && a.BreachCount == b.BreachCount && a.SoftBreachCount == b.SoftBreachCount &&
		a.WindowBreachCount == b.WindowBreachCount && a.WindowSoftBreachCount == b.WindowSoftBreachCount &&
		eqT(a.LastBreachAt, b.LastBreachAt) && eqS(a.LastBreachDim, b.LastBreachDim) &&
		a.CreatedAt.Equal(b.CreatedAt) && a.UpdatedAt.Equal(b.UpdatedAt)
}
