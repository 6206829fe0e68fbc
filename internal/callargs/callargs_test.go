package callargs_test

import (
	"errors"
	"testing"
	"time"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/callargs"
)

func TestSecondsAreWholeSeconds(t *testing.T) {
	if s, err := callargs.Seconds("ttl_seconds", 90*time.Second); err != nil || s != 90 {
		t.Errorf("90s = %d, %v", s, err)
	}
	if s, err := callargs.Seconds("ttl_seconds", 0); err != nil || s != 0 {
		t.Errorf("0 = %d, %v", s, err)
	}
	if s, err := callargs.Seconds("ttl_seconds", -time.Second); err != nil || s != -1 {
		t.Errorf("-1s = %d, %v (the function refuses it, naming its range)", s, err)
	}
	for _, d := range []time.Duration{1500 * time.Millisecond, time.Nanosecond, 1 << 62} {
		_, err := callargs.Seconds("ttl_seconds", d)
		var e *spendcap.Error
		if !errors.As(err, &e) || !errors.Is(err, spendcap.ErrInvalidArgument) || e.Message[:12] != "ttl_seconds:" {
			t.Errorf("%v: %v, want SC002 naming ttl_seconds", d, err)
		}
	}
}

func TestEmptyLimitsAreUnchangedAndClearFieldsClear(t *testing.T) {
	l, err := callargs.SetLimits(spendcap.SetLimitsParams{HardLimits: map[string]int64{}, AlertPercents: []int32{}})
	if err != nil || l.Hard != nil || l.Soft != nil || l.Alerts != nil {
		t.Errorf("empty fields = %+v, %v; want every one nil (unchanged)", l, err)
	}
	l, err = callargs.SetLimits(spendcap.SetLimitsParams{ClearHardLimits: true, ClearSoftLimits: true, ClearAlertPercents: true})
	if err != nil || l.Hard == nil || len(l.Hard) != 0 || l.Soft == nil || len(l.Soft) != 0 || l.Alerts == nil || len(l.Alerts) != 0 {
		t.Errorf("cleared fields = %+v, %v; want every one empty, not nil", l, err)
	}
	l, err = callargs.SetLimits(spendcap.SetLimitsParams{HardLimits: map[string]int64{"t": 1}, AlertPercents: []int32{80}})
	if err != nil || l.Hard["t"] != 1 || len(l.Alerts) != 1 || l.Soft != nil {
		t.Errorf("set fields = %+v, %v", l, err)
	}
}

func TestAFieldSetAndClearedIsRefused(t *testing.T) {
	for name, p := range map[string]spendcap.SetLimitsParams{
		"hard_limits":    {HardLimits: map[string]int64{"t": 1}, ClearHardLimits: true},
		"soft_limits":    {SoftLimits: map[string]int64{"t": 1}, ClearSoftLimits: true},
		"alert_percents": {AlertPercents: []int32{80}, ClearAlertPercents: true},
	} {
		_, err := callargs.SetLimits(p)
		var e *spendcap.Error
		if !errors.As(err, &e) || e.Code != "SC002" || e.Message != name+": set and cleared in one call" {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestQuotaPolicyDurationsNameTheirArgument(t *testing.T) {
	w, l, err := callargs.QuotaPolicy(spendcap.CreateQuotaPolicyParams{Window: time.Minute, LeaseTTL: 30 * time.Second})
	if err != nil || w != 60 || l != 30 {
		t.Errorf("= %d, %d, %v", w, l, err)
	}
	for name, p := range map[string]spendcap.CreateQuotaPolicyParams{
		"window_seconds": {Window: time.Millisecond},
		"lease_seconds":  {Window: time.Minute, LeaseTTL: 1500 * time.Millisecond},
	} {
		var e *spendcap.Error
		if _, _, err := callargs.QuotaPolicy(p); !errors.As(err, &e) || e.Message[:len(name)] != name {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestCountsOutsideAnIntegerAreRefusedNamingTheArgument(t *testing.T) {
	if n, err := callargs.Count("max_rows", 500); err != nil || n != 500 {
		t.Errorf("500 = %d, %v", n, err)
	}
	var e *spendcap.Error
	if _, err := callargs.Count("max_rows", 1<<31); !errors.As(err, &e) || e.Message != "max_rows: 2147483648 is out of range" {
		t.Errorf("2^31: %v", err)
	}
}

func TestABatchItemsCodeIsASpendcapErrorOnlyWhenItIsOne(t *testing.T) {
	err := callargs.BatchItemError("report_usage_batch", 3, "SC001", `budget_id: budget "x" not found`)
	if !errors.Is(err, spendcap.ErrBudgetNotFound) || err.Error() != `SC001 budget_id: budget "x" not found` {
		t.Errorf("SC001: %v", err)
	}
	err = callargs.BatchItemError("report_usage_batch", 3, "XX000", "internal error")
	var e *spendcap.Error
	if errors.As(err, &e) || err.Error() != "report_usage_batch item 3: XX000 internal error" {
		t.Errorf("XX000: %v", err)
	}
}
