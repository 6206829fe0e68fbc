package conformance

import (
	"strings"
	"testing"
	"time"

	"github.com/spendcap/spendcap"
)

func init() {
	register("CreateBudgetWithDefaults", createWithDefaults)
	register("CreateBudgetStoresEveryField", createStoresEveryField)
	register("CreateBudgetCanonicalisesResetEvery", createCanonicalisesResetEvery)
	register("CreateBudgetRejectsInvalidArguments", createRejectsInvalidArguments)
	register("CreateBudgetAcceptsBoundaryValues", createAcceptsBoundaryValues)
	register("CreateBudgetAgainWithSameDefinitionChangesNothing", createAgainChangesNothing)
	register("CreateBudgetWithDifferentDefinitionConflicts", createConflicts)
	register("CreateBudgetDefaultAnchors", createDefaultAnchors)
	register("CreateBudgetWithFutureAnchorOpensAWindowUntilTheAnchor", createFutureAnchor)
	register("CreateBudgetWithPastAnchorCountsBoundariesFromTheAnchor", createPastAnchor)
	register("BudgetStatusOfUnknownBudgetFailsClosed", statusUnknown)
	register("BudgetStatusRejectsAnInvalidID", statusInvalidID)
	register("BudgetStatusShowsTheRolledWindowWithoutWriting", statusRolledView)
	register("BudgetStatusBeforeTheWindowStartShowsTheStoredWindow", statusBeforeWindow)
	register("BudgetWithoutResetHasOneWindowForever", statusNoReset)
}

func createWithDefaults(t *testing.T, b spendcap.Backend) {
	at := ts(t, "2026-03-10T12:34:56.789Z")
	c := mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "b1", At: at})
	if !c.Created || !c.WindowStart.Equal(at) || c.NextResetAt != nil || c.BudgetID != "b1" {
		t.Errorf("create_budget = %+v", c)
	}
	want := spendcap.Status{BudgetID: "b1", HardLimits: q{}, SoftLimits: q{}, ResetTimezone: "UTC", Mode: spendcap.ModeEnforce,
		DedupTTL: 86400 * time.Second, WindowSeq: 1, WindowStart: at, Usage: q{}, Reserved: q{}, Remaining: q{}, CreatedAt: at, UpdatedAt: at}
	if got := status(t, b, "b1", at); StatusString(got) != StatusString(want) {
		t.Errorf("budget_status\n got %s\nwant %s", StatusString(got), StatusString(want))
	}
}

func createStoresEveryField(t *testing.T, b spendcap.Backend) {
	at := ts(t, "2026-03-10T12:00:00Z")
	anchor := ts(t, "2026-01-31T00:00:00Z")
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "b1", HardLimits: q{"tokens": 1000, "usd_micros": 0},
		SoftLimits: q{"tokens": 800, "requests": 5}, ResetEvery: " 1 Months ", ResetTimezone: "UTC", ResetAnchor: &anchor,
		Mode: spendcap.ModeObserve, ScopeType: "tenant", ScopeID: "t-1", DedupTTL: 60 * time.Second, At: at})
	want := spendcap.Status{BudgetID: "b1", HardLimits: q{"tokens": 1000, "usd_micros": 0}, SoftLimits: q{"tokens": 800, "requests": 5},
		ResetEvery: "1 month", ResetTimezone: "UTC", ResetAnchor: &anchor, Mode: spendcap.ModeObserve, ScopeType: "tenant", ScopeID: "t-1",
		DedupTTL: 60 * time.Second, WindowSeq: 1, WindowStart: ts(t, "2026-02-28T00:00:00Z"), NextResetAt: ptr(ts(t, "2026-03-31T00:00:00Z")),
		Usage: q{}, Reserved: q{}, Remaining: q{"tokens": 1000, "usd_micros": 0}, CreatedAt: at, UpdatedAt: at}
	if got := status(t, b, "b1", at); StatusString(got) != StatusString(want) {
		t.Errorf("budget_status\n got %s\nwant %s", StatusString(got), StatusString(want))
	}
}

func createCanonicalisesResetEvery(t *testing.T, b spendcap.Backend) {
	for i, tc := range []struct{ in, want string }{
		{"1 month", "1 month"}, {"1 months", "1 month"}, {" 15 Minutes ", "15 minutes"}, {"15 minute", "15 minutes"},
		{"2 WEEKS", "2 weeks"}, {"10000 seconds", "10000 seconds"}, {"1 YEAR", "1 year"}, {"3\thours", "3 hours"}, {"1 day", "1 day"},
	} {
		id := "b" + itoa(i)
		mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: id, ResetEvery: tc.in, At: day0})
		if st := status(t, b, id, day0); st.ResetEvery != tc.want {
			t.Errorf("reset_every %q stored as %q, want %q", tc.in, st.ResetEvery, tc.want)
		}
		// The same period spelled differently is the same definition.
		if c, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: id, ResetEvery: tc.want, At: day0}); err != nil || c.Created {
			t.Errorf("repeat with %q: created=%v err=%v, want created=false", tc.want, c.Created, err)
		}
	}
}

func createRejectsInvalidArguments(t *testing.T, b spendcap.Backend) {
	many := q{}
	for i := 0; i < 33; i++ {
		many["d"+itoa(i)] = 1
	}
	anchor := day0
	for _, tc := range []struct {
		name string
		p    spendcap.CreateBudgetParams
		arg  string
	}{
		{"empty id", spendcap.CreateBudgetParams{}, "budget_id"},
		{"id of 129 bytes", spendcap.CreateBudgetParams{BudgetID: strings.Repeat("x", 129)}, "budget_id"},
		{"id with {", spendcap.CreateBudgetParams{BudgetID: "a{b"}, "budget_id"},
		{"id with }", spendcap.CreateBudgetParams{BudgetID: "a}b"}, "budget_id"},
		{"id with a space", spendcap.CreateBudgetParams{BudgetID: "a b"}, "budget_id"},
		{"id with a control byte", spendcap.CreateBudgetParams{BudgetID: "a\tb"}, "budget_id"},
		{"id with non-ASCII", spendcap.CreateBudgetParams{BudgetID: "café"}, "budget_id"},
		{"33 dimensions", spendcap.CreateBudgetParams{BudgetID: "b", HardLimits: many}, "hard_limits"},
		{"empty dimension name", spendcap.CreateBudgetParams{BudgetID: "b", HardLimits: q{"": 1}}, "hard_limits"},
		{"dimension name of 65 bytes", spendcap.CreateBudgetParams{BudgetID: "b", HardLimits: q{strings.Repeat("d", 65): 1}}, "hard_limits"},
		{"dimension name with /", spendcap.CreateBudgetParams{BudgetID: "b", HardLimits: q{"a/b": 1}}, "hard_limits"},
		{"dimension name with a space", spendcap.CreateBudgetParams{BudgetID: "b", SoftLimits: q{"a b": 1}}, "soft_limits"},
		{"negative quantity", spendcap.CreateBudgetParams{BudgetID: "b", HardLimits: q{"t": -1}}, "hard_limits"},
		{"quantity above MAX_QTY", spendcap.CreateBudgetParams{BudgetID: "b", HardLimits: q{"t": spendcap.MaxQuantity + 1}}, "hard_limits"},
		{"soft above hard", spendcap.CreateBudgetParams{BudgetID: "b", HardLimits: q{"t": 10}, SoftLimits: q{"t": 11}}, "soft_limits"},
		{"zero periods", spendcap.CreateBudgetParams{BudgetID: "b", ResetEvery: "0 days"}, "reset_every"},
		{"10001 periods", spendcap.CreateBudgetParams{BudgetID: "b", ResetEvery: "10001 days"}, "reset_every"},
		{"period without n", spendcap.CreateBudgetParams{BudgetID: "b", ResetEvery: "month"}, "reset_every"},
		{"unknown unit", spendcap.CreateBudgetParams{BudgetID: "b", ResetEvery: "1 fortnight"}, "reset_every"},
		{"fractional period", spendcap.CreateBudgetParams{BudgetID: "b", ResetEvery: "1.5 days"}, "reset_every"},
		{"negative period", spendcap.CreateBudgetParams{BudgetID: "b", ResetEvery: "-1 day"}, "reset_every"},
		{"blank period", spendcap.CreateBudgetParams{BudgetID: "b", ResetEvery: " "}, "reset_every"},
		{"period without space", spendcap.CreateBudgetParams{BudgetID: "b", ResetEvery: "1day"}, "reset_every"},
		{"double plural", spendcap.CreateBudgetParams{BudgetID: "b", ResetEvery: "2 dayss"}, "reset_every"},
		{"anchor without period", spendcap.CreateBudgetParams{BudgetID: "b", ResetAnchor: &anchor}, "reset_anchor"},
		{"unknown zone", spendcap.CreateBudgetParams{BudgetID: "b", ResetTimezone: "Mars/Olympus_Mons"}, "reset_timezone"},
		{"zone in the wrong case", spendcap.CreateBudgetParams{BudgetID: "b", ResetTimezone: "america/new_york"}, "reset_timezone"},
		{"POSIX zone spec", spendcap.CreateBudgetParams{BudgetID: "b", ResetTimezone: "XYZ3"}, "reset_timezone"},
		{"offset beyond 14:00", spendcap.CreateBudgetParams{BudgetID: "b", ResetTimezone: "+14:30"}, "reset_timezone"},
		{"offset without colon", spendcap.CreateBudgetParams{BudgetID: "b", ResetTimezone: "+0530"}, "reset_timezone"},
		{"unknown mode", spendcap.CreateBudgetParams{BudgetID: "b", Mode: "strict"}, "mode"},
		{"negative ttl", spendcap.CreateBudgetParams{BudgetID: "b", DedupTTL: -1 * time.Second}, "dedup_ttl_seconds"},
		{"ttl above 30 days", spendcap.CreateBudgetParams{BudgetID: "b", DedupTTL: 2592001 * time.Second}, "dedup_ttl_seconds"},
		{"ttl not whole seconds", spendcap.CreateBudgetParams{BudgetID: "b", DedupTTL: 1500 * time.Millisecond}, "dedup_ttl_seconds"},
	} {
		_, err := b.CreateBudget(ctx, tc.p)
		requireCode(t, err, "SC002", tc.arg+": ")
		if tc.p.BudgetID == "b" {
			_, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "b"})
			requireCode(t, err, "SC001", "budget_id: ")
		}
	}
}

func createAcceptsBoundaryValues(t *testing.T, b spendcap.Backend) {
	dims := q{}
	for i := 0; i < 32; i++ {
		dims["d"+itoa(i)] = spendcap.MaxQuantity
	}
	for i, p := range []spendcap.CreateBudgetParams{
		{BudgetID: strings.Repeat("x", 128)},
		{BudgetID: "!#$%&'()*+,-./:;<=>?@[]^_`|~\"\\"},
		{HardLimits: dims},
		{HardLimits: q{strings.Repeat("d", 64): 0, "A-Z_a.z:0-9": 1000}},
		{HardLimits: q{"t": 10}, SoftLimits: q{"t": 10}},
		{SoftLimits: q{"t": 10}},
		{ResetEvery: "10000 years"},
		{ResetTimezone: "+14:00", ResetEvery: "1 day"},
		{ResetTimezone: "-12:00", ResetEvery: "1 day"},
		{ResetTimezone: "Asia/Kolkata", ResetEvery: "1 day"},
		{DedupTTL: 1 * time.Second},
		{DedupTTL: 2592000 * time.Second},
		{Mode: spendcap.ModeObserve},
	} {
		if p.BudgetID == "" {
			p.BudgetID = "ok-" + itoa(i)
		}
		p.At = day0
		if c, err := b.CreateBudget(ctx, p); err != nil || !c.Created {
			t.Errorf("create_budget(%+v): created=%v err=%v", p, c.Created, err)
		}
	}
}

func createAgainChangesNothing(t *testing.T, b spendcap.Backend) {
	at := ts(t, "2026-03-10T12:00:00Z")
	def := spendcap.CreateBudgetParams{BudgetID: "b1", HardLimits: q{"t": 10}, SoftLimits: q{"t": 5}, ResetEvery: "1 day",
		ResetTimezone: "Asia/Kolkata", Mode: spendcap.ModeObserve, ScopeType: "tenant", ScopeID: "x", DedupTTL: 600 * time.Second, At: at}
	first := mustCreate(t, b, def)
	before := snapshot(t, b, "b1", at)
	def.At = at.Add(time.Hour)
	again := mustCreate(t, b, def)
	if again.Created || !again.WindowStart.Equal(first.WindowStart) || !again.NextResetAt.Equal(*first.NextResetAt) {
		t.Errorf("again = %+v, want created=false and the window of %+v", again, first)
	}
	// A null anchor matches the stored default; passing that anchor explicitly matches too.
	def.ResetAnchor = status(t, b, "b1", at).ResetAnchor
	if c, err := b.CreateBudget(ctx, def); err != nil || c.Created {
		t.Errorf("with the stored anchor: created=%v err=%v", c.Created, err)
	}
	if after := snapshot(t, b, "b1", at); after != before {
		t.Errorf("state changed:\n%s\n%s", after, before)
	}
}

func createConflicts(t *testing.T, b spendcap.Backend) {
	base := spendcap.CreateBudgetParams{BudgetID: "b1", HardLimits: q{"t": 10}, SoftLimits: q{"t": 5}, ResetEvery: "1 day",
		ResetTimezone: "UTC", Mode: spendcap.ModeEnforce, ScopeType: "tenant", ScopeID: "x", DedupTTL: 600 * time.Second, At: day0}
	mustCreate(t, b, base)
	before := snapshot(t, b, "b1", day0)
	anchor := status(t, b, "b1", day0).ResetAnchor.Add(time.Hour)
	for _, change := range []func(p *spendcap.CreateBudgetParams){
		func(p *spendcap.CreateBudgetParams) { p.HardLimits = q{"t": 11} },
		func(p *spendcap.CreateBudgetParams) { p.HardLimits = q{} },
		func(p *spendcap.CreateBudgetParams) { p.SoftLimits = q{"t": 4} },
		func(p *spendcap.CreateBudgetParams) { p.ResetEvery = "2 days" },
		func(p *spendcap.CreateBudgetParams) { p.ResetEvery = "" },
		func(p *spendcap.CreateBudgetParams) { p.ResetTimezone = "Asia/Kolkata" },
		func(p *spendcap.CreateBudgetParams) { p.Mode = spendcap.ModeObserve },
		func(p *spendcap.CreateBudgetParams) { p.ScopeType = "" },
		func(p *spendcap.CreateBudgetParams) { p.ScopeID = "y" },
		func(p *spendcap.CreateBudgetParams) { p.DedupTTL = 601 * time.Second },
		func(p *spendcap.CreateBudgetParams) { p.ResetAnchor = &anchor },
	} {
		p := base
		change(&p)
		_, err := b.CreateBudget(ctx, p)
		requireCode(t, err, "SC005", "budget_id: ")
	}
	if after := snapshot(t, b, "b1", day0); after != before {
		t.Errorf("state changed after SC005:\n%s\n%s", after, before)
	}
}

// createDefaultAnchors covers docs/semantics.md#windows's default anchor for every unit.
func createDefaultAnchors(t *testing.T, b spendcap.Backend) {
	for i, tc := range []struct {
		name, every, zone, at    string
		anchor, start, nextReset string
	}{
		{"second", "1 second", "UTC", "2026-03-10T12:34:56.789Z", "2026-03-10T12:34:56Z", "2026-03-10T12:34:56Z", "2026-03-10T12:34:57Z"},
		{"minutes", "15 minutes", "UTC", "2026-03-10T12:34:56.789Z", "2026-03-10T12:34:00Z", "2026-03-10T12:34:00Z", "2026-03-10T12:49:00Z"},
		{"hour in a half-hour zone", "1 hour", "Asia/Kolkata", "2026-03-10T12:34:56Z", "2026-03-10T12:30:00Z", "2026-03-10T12:30:00Z", "2026-03-10T13:30:00Z"},
		{"hour in a fixed offset", "1 hour", "+05:45", "2026-03-10T12:34:56Z", "2026-03-10T12:15:00Z", "2026-03-10T12:15:00Z", "2026-03-10T13:15:00Z"},
		{"hour inside the DST overlap", "1 hour", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-01T05:00:00Z", "2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z"},
		{"day at local midnight", "1 day", "America/New_York", "2026-03-10T03:00:00Z", "2026-03-09T04:00:00Z", "2026-03-09T04:00:00Z", "2026-03-10T04:00:00Z"},
		{"25-hour day", "1 day", "America/New_York", "2026-11-01T12:00:00Z", "2026-11-01T04:00:00Z", "2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z"},
		{"23-hour day", "1 day", "America/New_York", "2026-03-08T12:00:00Z", "2026-03-08T05:00:00Z", "2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z"},
		{"day in Kolkata", "1 day", "Asia/Kolkata", "2026-03-10T20:00:00Z", "2026-03-10T18:30:00Z", "2026-03-10T18:30:00Z", "2026-03-11T18:30:00Z"},
		{"week on Monday", "1 week", "UTC", "2026-03-12T08:00:00Z", "2026-03-09T00:00:00Z", "2026-03-09T00:00:00Z", "2026-03-16T00:00:00Z"},
		{"month on the 1st", "1 month", "UTC", "2026-03-31T23:59:59Z", "2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"},
		{"3 months from the creation month", "3 months", "UTC", "2026-05-20T00:00:00Z", "2026-05-01T00:00:00Z", "2026-05-01T00:00:00Z", "2026-08-01T00:00:00Z"},
		{"month in New York", "1 month", "America/New_York", "2026-03-01T02:00:00Z", "2026-02-01T05:00:00Z", "2026-02-01T05:00:00Z", "2026-03-01T05:00:00Z"},
		{"year on January 1st", "1 year", "UTC", "2026-07-04T00:00:00Z", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"},
	} {
		id := "b" + itoa(i)
		at := ts(t, tc.at)
		c := mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: id, ResetEvery: tc.every, ResetTimezone: tc.zone, At: at})
		if !c.WindowStart.Equal(ts(t, tc.start)) || !c.NextResetAt.Equal(ts(t, tc.nextReset)) || !c.Created {
			t.Errorf("%s: create_budget = %v .. %v, want %s .. %s", tc.name, c.WindowStart.UTC(), c.NextResetAt.UTC(), tc.start, tc.nextReset)
		}
		if st := status(t, b, id, at); !st.ResetAnchor.Equal(ts(t, tc.anchor)) || st.WindowSeq != 1 {
			t.Errorf("%s: reset_anchor = %v (window_seq %d), want %v", tc.name, st.ResetAnchor.UTC(), st.WindowSeq, tc.anchor)
		}
	}
}

func createFutureAnchor(t *testing.T, b spendcap.Backend) {
	at := ts(t, "2026-03-10T12:00:00Z")
	anchor := ts(t, "2026-04-01T00:00:00Z")
	c := mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "b1", ResetEvery: "1 month", ResetAnchor: &anchor, At: at})
	if !c.WindowStart.Equal(at) || !c.NextResetAt.Equal(anchor) {
		t.Errorf("window = [%v, %v), want [created_at, anchor) = [%v, %v)", c.WindowStart, c.NextResetAt, at, anchor)
	}
}

func createPastAnchor(t *testing.T, b spendcap.Backend) {
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
		anchor := ts(t, tc.anchor)
		c := mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "b" + itoa(i), ResetEvery: tc.every, ResetTimezone: tc.zone,
			ResetAnchor: &anchor, At: ts(t, tc.at)})
		if !c.WindowStart.Equal(ts(t, tc.start)) || !c.NextResetAt.Equal(ts(t, tc.next)) {
			t.Errorf("anchor %s every %s in %s at %s: window [%v, %v), want [%s, %s)", tc.anchor, tc.every, tc.zone, tc.at,
				c.WindowStart.UTC(), c.NextResetAt.UTC(), tc.start, tc.next)
		}
	}
}

func statusUnknown(t *testing.T, b spendcap.Backend) {
	_, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "nope"})
	requireCode(t, err, "SC001", "budget_id: ")
}

func statusInvalidID(t *testing.T, b spendcap.Backend) {
	for _, id := range []string{"", "a{b}", "a b"} {
		_, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: id})
		requireCode(t, err, "SC002", "budget_id: ")
	}
}

func statusRolledView(t *testing.T, b spendcap.Backend) {
	at := ts(t, "2026-03-10T12:00:00Z")
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "b1", HardLimits: q{"t": 7}, ResetEvery: "1 day", At: at})
	later := at.Add(3*24*time.Hour + time.Hour)
	st := status(t, b, "b1", later)
	// The closed window was empty: window_seq counts only windows with usage or breaches.
	if st.WindowSeq != 1 || !st.WindowStart.Equal(ts(t, "2026-03-13T00:00:00Z")) || !st.NextResetAt.Equal(ts(t, "2026-03-14T00:00:00Z")) {
		t.Errorf("status 3 days later: window_seq %d [%v, %v), want 1 [2026-03-13, 2026-03-14)",
			st.WindowSeq, st.WindowStart, st.NextResetAt)
	}
	if st.Remaining["t"] != 7 || len(st.Usage) != 0 {
		t.Errorf("rolled view: usage %v remaining %v", st.Usage, st.Remaining)
	}
	again := status(t, b, "b1", at)
	if again.WindowSeq != 1 || !again.WindowStart.Equal(ts(t, "2026-03-10T00:00:00Z")) {
		t.Errorf("status at creation after a later read: window_seq %d from %v; the read must not write", again.WindowSeq, again.WindowStart)
	}
	h, err := history(b, "b1", 10, at)
	requireHistory(t, h, err)
}

func statusBeforeWindow(t *testing.T, b spendcap.Backend) {
	at := ts(t, "2026-03-10T12:00:00Z")
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "b1", ResetEvery: "1 hour", At: at})
	st := status(t, b, "b1", at.Add(-48*time.Hour))
	if st.WindowSeq != 1 || !st.WindowStart.Equal(at) {
		t.Errorf("status at an instant before the window: seq %d start %v; windows never move backwards", st.WindowSeq, st.WindowStart)
	}
}

func statusNoReset(t *testing.T, b spendcap.Backend) {
	at := ts(t, "2026-03-10T12:00:00Z")
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "b1", At: at})
	st := status(t, b, "b1", at.AddDate(30, 0, 0))
	if st.WindowSeq != 1 || !st.WindowStart.Equal(at) || st.NextResetAt != nil || st.ResetAnchor != nil || st.ResetEvery != "" {
		t.Errorf("30 years later: %s", StatusString(st))
	}
}
