package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/localserver"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

// The replica rows run report_usage on a Valkey primary that has one replica on loopback, from a
// client that waits for the replica after each write (valkey.Options.MinReplicas 1) and from one
// that does not, on the same servers and budgets: what waiting costs without a failover.
const (
	replicaNoWait  = "replica valkey sc_report_usage 1 dim, MinReplicas 0"
	replicaWait    = "replica valkey sc_report_usage 1 dim, MinReplicas 1"
	replicaBudgets = 1000
)

func replicaBenches(ctx context.Context, only string) ([]bench, error) {
	if only != "" && !strings.Contains(replicaNoWait+"\n"+replicaWait, only) {
		return nil, nil
	}
	var servers [2]*localserver.Valkey
	for i := range servers {
		s, err := localserver.StartValkey(ctx, localserver.ValkeyOptions{})
		if err != nil {
			return nil, err
		}
		testenv.OnShutdown(s.Stop)
		servers[i] = s
	}
	primary, replica := servers[0], servers[1]
	rdb := redis.NewClient(&redis.Options{Addr: primary.Addr, PoolSize: 40})
	testenv.OnShutdown(func() { _ = rdb.Close() })
	if err := replica.ReplicaOf(ctx, primary); err != nil {
		return nil, err
	}
	plain, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true})
	if err != nil {
		return nil, err
	}
	waiting, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true, SkipLoad: true, MinReplicas: 1})
	if err != nil {
		return nil, err
	}
	for i := 0; i < replicaBudgets; i++ {
		if _, err := plain.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: fmt.Sprintf("r%d", i)}); err != nil {
			return nil, err
		}
	}
	one := map[string]int64{"tokens": 1}
	pick := func(w int, i int64) string { return fmt.Sprintf("r%d", (int64(w)*7919+i*104729)%replicaBudgets) }
	row := func(name string, c *valkey.Client) bench {
		return bench{name: name, cs: []int{32}, server: rdb, run: func(ctx context.Context, w int, i int64) error {
			_, err := c.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: pick(w, i), Deltas: one})
			return err
		}}
	}
	return []bench{row(replicaNoWait, plain), row(replicaWait, waiting)}, nil
}
