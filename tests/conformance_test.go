package tests

import (
	"context"
	"testing"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/tests/conformance"
	"github.com/spendcap/spendcap/valkey"
)

func openPostgres(t *testing.T) spendcap.Backend {
	return gobinding.NewClient(testenv.Pool(t))
}

func openValkey(t *testing.T) spendcap.Backend {
	c, err := valkey.New(context.Background(), testenv.Valkey(t), valkey.Options{AllowVolatile: true, AllowReplay: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConformancePostgres(t *testing.T) {
	t.Parallel()
	conformance.Run(t, openPostgres)
}

func TestConformanceValkey(t *testing.T) {
	t.Parallel()
	conformance.Run(t, openValkey)
}
