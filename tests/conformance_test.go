package tests

import (
	"testing"

	"github.com/spendcap/spendcap/tests/conformance"
)

func TestConformancePostgres(t *testing.T) {
	t.Parallel()
	conformance.Run(t, openPostgres)
}

func TestConformanceValkey(t *testing.T) {
	t.Parallel()
	conformance.Run(t, openValkey)
}
