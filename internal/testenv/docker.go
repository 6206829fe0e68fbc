package testenv

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
	tcvalkey "github.com/testcontainers/testcontainers-go/modules/valkey"
)

var (
	dockerOnce sync.Once
	dockerOK   bool
)

// dockerAvailable probes the Docker daemon once per binary. testcontainers has no sentinel for
// "no Docker", and some of its paths panic, so any error or panic means no.
func dockerAvailable(ctx context.Context) bool {
	dockerOnce.Do(func() {
		if os.Getenv("SPENDCAP_TEST_NO_DOCKER") == "1" {
			return
		}
		defer func() {
			if recover() != nil {
				dockerOK = false
			}
		}()
		p, err := testcontainers.ProviderDefault.GetProvider()
		if err != nil {
			return
		}
		defer p.Close()
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		dockerOK = p.Health(hctx) == nil
	})
	return dockerOK
}

func dockerPostgres(ctx context.Context) (string, func(), error) {
	ctr, err := tcpostgres.Run(ctx, "postgres:15-alpine",
		tcpostgres.WithDatabase("postgres"), tcpostgres.WithUsername("postgres"), tcpostgres.WithPassword("postgres"),
		tcpostgres.BasicWaitStrategies(),
		testcontainers.WithCmdArgs("-c", "max_connections=300", "-c", "fsync=off", "-c", "synchronous_commit=off"))
	stop := func() {
		if ctr != nil {
			_ = testcontainers.TerminateContainer(ctr)
		}
	}
	if err != nil {
		stop()
		return "", nil, err
	}
	u, err := ctr.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("connection string: %w", err)
	}
	return u, stop, nil
}

func dockerValkey(ctx context.Context) (string, func(), error) {
	ctr, err := tcvalkey.Run(ctx, "valkey/valkey:8.0")
	stop := func() {
		if ctr != nil {
			_ = testcontainers.TerminateContainer(ctr)
		}
	}
	if err != nil {
		stop()
		return "", nil, err
	}
	u, err := ctr.ConnectionString(ctx)
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("connection string: %w", err)
	}
	return u, stop, nil
}
