package jobs_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/jobs"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

func TestTheWorkerExportsGaugesOfTheBudgetsThatOptIn(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	c := gobinding.NewClient(pool, gobinding.Options{})
	for _, id := range []string{"shown", "hot", "cold"} {
		alertingBudget(t, c, id)
	}
	report(t, c, "shown", 10)
	report(t, c, "hot", 70)
	report(t, c, "cold", 20)
	w := startWorker(t, pool, jobs.Config{GaugeBudgets: []string{"shown"}, GaugeTop: 1})
	for name, want := range map[string]float64{
		`spendcap_budget_usage{backend="postgres",budget_id="shown",dimension="tokens"}`:      10,
		`spendcap_budget_hard_limit{backend="postgres",budget_id="shown",dimension="tokens"}`: 100,
		`spendcap_budget_remaining{backend="postgres",budget_id="shown",dimension="tokens"}`:  90,
		`spendcap_budget_usage{backend="postgres",budget_id="hot",dimension="tokens"}`:        70,
		`spendcap_budget_remaining{backend="postgres",budget_id="hot",dimension="tokens"}`:    30,
		`spendcap_budget_usage{backend="postgres",budget_id="cold",dimension="tokens"}`:       0, // not exported
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

// With a Valkey, the budgets there are exported too, under backend="valkey", with the same
// bound: the named ids and the top N by share of a hard limit. The ranking is made again every
// scan interval, so a budget that overtakes the top one shows up within about that time.
func TestTheWorkerExportsGaugesOfValkeyBudgetsToo(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	vk, err := valkey.NewClient(ctx, testenv.Valkey(t), valkey.Options{AllowVolatile: true})
	if err != nil {
		t.Fatal(err)
	}
	pg := gobinding.NewClient(pool, gobinding.Options{})
	alertingBudget(t, pg, "pg-hot")
	report(t, pg, "pg-hot", 90)
	for _, id := range []string{"acme/shown", "acme/hot", "acme/cold", "other"} {
		alertingBudget(t, vk, id)
	}
	if _, err := vk.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "unlimited"}); err != nil {
		t.Fatal(err)
	}
	report(t, vk, "acme/shown", 10)
	report(t, vk, "acme/hot", 70)
	report(t, vk, "acme/cold", 20)
	report(t, vk, "other", 40)
	report(t, vk, "unlimited", 1000) // no hard limit: never ranked
	// As many named ids as a worker takes (1000, most unknown) and a top 2: more than one read.
	named := []string{"acme/shown"}
	for i := len(named); i < 1000; i++ {
		named = append(named, fmt.Sprintf("missing-%d", i))
	}
	w := startWorker(t, pool, jobs.Config{Valkey: vk, GaugeBudgets: named, GaugeTop: 2,
		ValkeyScanInterval: 200 * time.Millisecond})
	want := map[string]float64{
		`spendcap_budget_usage{backend="postgres",budget_id="pg-hot",dimension="tokens"}`:          90,
		`spendcap_budget_usage{backend="valkey",budget_id="acme/shown",dimension="tokens"}`:        10,
		`spendcap_budget_hard_limit{backend="valkey",budget_id="acme/shown",dimension="tokens"}`:   100,
		`spendcap_budget_remaining{backend="valkey",budget_id="acme/shown",dimension="tokens"}`:    90,
		`spendcap_budget_usage{backend="valkey",budget_id="acme/hot",dimension="tokens"}`:          70,
		`spendcap_budget_usage{backend="valkey",budget_id="other",dimension="tokens"}`:             40,
		`spendcap_budget_usage{backend="valkey",budget_id="acme/cold",dimension="tokens"}`:         0, // third: not exported
		`spendcap_budget_usage{backend="valkey",budget_id="unlimited",dimension="tokens"}`:         0,
		`spendcap_budget_usage{backend="postgres",budget_id="acme/hot",dimension="tokens"}`:        0,
		`spendcap_budget_remaining{backend="valkey",budget_id="unlimited",dimension="tokens"}`:     0,
		`spendcap_budget_hard_limit{backend="postgres",budget_id="acme/shown",dimension="tokens"}`: 0,
	}
	for name, v := range want {
		if got := metric(t, w, name); got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
	// acme/cold overtakes other: the next ranking exports it instead, and reads it as it is.
	report(t, vk, "acme/cold", 60)
	eventually(t, "acme/cold ranked", 10*time.Second, func() bool {
		return metric(t, w, `spendcap_budget_usage{backend="valkey",budget_id="acme/cold",dimension="tokens"}`) == 80 &&
			metric(t, w, `spendcap_budget_usage{backend="valkey",budget_id="other",dimension="tokens"}`) == 0
	})
}
