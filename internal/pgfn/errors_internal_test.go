package pgfn

import (
	"context"
	"errors"
	"testing"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// SC006 comes from quota functions; a raised SQLSTATE of each code maps the same way.
func TestRaisedErrorCodesMapToSentinels(t *testing.T) {
	db := testenv.Pool(t)
	for code, want := range map[string]error{
		"SC001": spendcap.ErrBudgetNotFound, "SC002": spendcap.ErrInvalidArgument, "SC003": spendcap.ErrIdempotencyConflict,
		"SC004": spendcap.ErrQuantityOutOfRange, "SC005": spendcap.ErrBudgetConflict, "SC006": spendcap.ErrPolicyNotFound,
		"SC007": spendcap.ErrReservationNotFound,
	} {
		_, err := db.Exec(context.Background(), `DO $do$ BEGIN RAISE EXCEPTION USING ERRCODE = '`+code+`', MESSAGE = 'policy_id: x'; END $do$`)
		err = mapError(err)
		var se *spendcap.Error
		if !errors.Is(err, want) || !errors.As(err, &se) || se.Message != "policy_id: x" {
			t.Errorf("%s mapped to %v", code, err)
		}
	}
	if err := mapError(errors.New("other")); err.Error() != "other" {
		t.Errorf("a non-Postgres error changed: %v", err)
	}
}
