package valkey_test

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

// A client on one Valkey server: NewClient checks its settings and loads the library, then the
// calls are those of gobinding.Client on PostgreSQL. (The test server keeps no append-only file,
// hence AllowVolatile; a production server needs none of the Allow options.)
func ExampleNewClient() {
	ctx := context.Background()
	opts, err := redis.ParseURL(testenv.MustValkeyURL())
	if err != nil {
		panic(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	budgets, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true})
	if err != nil {
		panic(err)
	}

	if _, err := budgets.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "example-org/key-1",
		HardLimits: map[string]int64{"tokens": 1_000}, ResetEvery: "1 day"}); err != nil {
		panic(err)
	}
	for i, tokens := range []int64{800, 300} {
		o, err := budgets.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "example-org/key-1",
			Deltas: map[string]int64{"tokens": tokens}, DedupKey: fmt.Sprintf("req-%d", i)})
		if err != nil {
			panic(err)
		}
		fmt.Println(o.Kind, o.Applied, o.Dimension, o.Usage, o.LimitValue)
	}
	// Output:
	// ok true  0 0
	// hard_breach false tokens 800 1000
}
