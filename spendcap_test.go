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
		err := fmt.Errorf("wrapped: %w", &spendcap.Error{Code: code, Message: `budget_id: budget "b" not found`})
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

func TestErrorOfAnotherCodeMatchesNoSentinel(t *testing.T) {
	err := &spendcap.Error{Code: "42501", Message: "permission denied"}
	for _, s := range []error{spendcap.ErrBudgetNotFound, spendcap.ErrInvalidArgument, spendcap.ErrReservationNotFound} {
		if errors.Is(err, s) {
			t.Errorf("42501 matches %v", s)
		}
	}
}

func TestErrorKeepsItsCause(t *testing.T) {
	cause := errors.New("backend error")
	if err := error(&spendcap.Error{Code: "SC002", Message: "mode: must be enforce or observe", Cause: cause}); !errors.Is(err, cause) {
		t.Errorf("cause lost: %v", err)
	}
}
