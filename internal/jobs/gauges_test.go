package jobs_test

import (
	"testing"

	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/jobs"
	"github.com/spendcap/spendcap/internal/testenv"
)

func TestTheWorkerExportsGaugesOfTheBudgetsThatOptIn(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	c := gobinding.NewClient(pool)
	for _, id := range []string{"shown", "hot", "cold"} {
		alertingBudget(t, c, id)
	}
	report(t, c, "shown", 10)
	report(t, c, "hot", 70)
	report(t, c, "cold", 20)
	w := startWorker(t, pool, jobs.Config{GaugeBudgets: []string{"shown"}, GaugeTop: 1})
	for name, want := range map[string]float64{
		`spendcap_budget_usage{budget_id="shown",dimension="tokens"}`:      10,
		`spendcap_budget_hard_limit{budget_id="shown",dimension="tokens"}`: 100,
		`spendcap_budget_remaining{budget_id="shown",dimension="tokens"}`:  90,
		`spendcap_budget_usage{budget_id="hot",dimension="tokens"}`:        70,
		`spendcap_budget_remaining{budget_id="hot",dimension="tokens"}`:    30,
		`spendcap_budget_usage{budget_id="cold",dimension="tokens"}`:       0, // not exported
	} {
		if got := metric(t, w, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	// Without opting in, no budget is exported.
	none := startWorker(t, pool, jobs.Config{})
	if got := metric(t, none, "spendcap_budget_usage"); got != 0 {
		t.Errorf("a worker without gauge budgets exports usage %v", got)
	}
	if _, err := jobs.New(pool, jobs.Config{GaugeTop: 101}); err == nil {
		t.Error("a gauge top of 101 was accepted")
	}
}
