package spendcap_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/spendcap/spendcap"
)

func TestEveryCodeMatchesItsSentinelOnly(t *testing.T) {
	codes := map[string]error{
		"SC001": spendcap.ErrBudgetNotFound, "SC002": spendcap.ErrInvalidArgument,
		"SC003": spendcap.ErrIdempotencyConflict, "SC004": spendcap.ErrQuantityOutOfRange,
		"SC005": spendcap.ErrBudgetConflict, "SC006": spendcap.ErrPolicyNotFound, "SC007": spendcap.ErrReservationNotFound,
	}
	for code, want := range codes {
		err := fmt.Errorf("wrapped: %w", spendcap.NewError(code, "budget_id: budget \"b\" not found", nil))
		if !errors.Is(err, want) {
			t.Errorf("%s does not match %v", code, want)
		}
		for other, sentinel := range codes {
			if other != code && errors.Is(err, sentinel) {
				t.Errorf("%s also matches %v", code, sentinel)
			}
		}
		var e *spendcap.Error
		if !errors.As(err, &e) || e.Code != code || e.Error() != code+` budget_id: budget "b" not found` {
			t.Errorf("%s: errors.As gave %+v", code, e)
		}
	}
}

func TestUnknownCodeIsNotASpendcapError(t *testing.T) {
	if err := spendcap.NewError("42501", "permission denied", nil); err != nil {
		t.Errorf("NewError(42501) = %v, want nil", err)
	}
}

func TestErrorKeepsItsCause(t *testing.T) {
	cause := errors.New("backend error")
	if err := spendcap.NewError("SC002", "mode: must be enforce or observe", cause); !errors.Is(err, cause) {
		t.Errorf("cause lost: %v", err)
	}
}
