// Package errcode holds spendcap's error codes, so that the backends can tell a spendcap error
// from any other without an exported constructor in package spendcap.
package errcode

// The codes (docs/semantics.md#errors): SQLSTATEs in PostgreSQL, error-reply prefixes in Valkey.
const (
	BudgetNotFound      = "SC001"
	InvalidArgument     = "SC002"
	IdempotencyConflict = "SC003"
	QuantityOutOfRange  = "SC004"
	BudgetConflict      = "SC005"
	PolicyNotFound      = "SC006"
	ReservationNotFound = "SC007"
)

// Known says whether code is one of the codes.
func Known(code string) bool {
	switch code {
	case BudgetNotFound, InvalidArgument, IdempotencyConflict, QuantityOutOfRange, BudgetConflict,
		PolicyNotFound, ReservationNotFound:
		return true
	}
	return false
}
