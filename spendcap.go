// Package spendcap is the Go API that spendcap's two backends share. Budgets and quotas live in
// PostgreSQL (PL/pgSQL functions in schema spendcap, see docs/sql-api.md) and, for hot paths, in a
// Valkey Functions library with the same semantics; gobinding.Client and valkey.Client implement
// this package's interfaces on each (gobinding.NewClient(db, gobinding.Options{}),
// valkey.NewClient(ctx, rdb, valkey.Options{})), and one conformance suite holds them to the same
// results. Durations are time.Duration; enumerations are string types with prefixed constants
// (OutcomeOK, ModeEnforce, QuotaReasonRateLimited, EventThreshold, ClosedBySchedule,
// AuditCheckLedger).
//
//   - Budgets (budgets, windows, admission, spend and reservations, budget sets) and Quotas
//     (sliding-window rate limits and concurrency leases), together Backend;
//   - BatchReporter and Batcher, which sends the ReportUsage calls of many goroutines as batches;
//   - EventSource and EventWatcher for the events budgets write, VerifyWebhook for their webhooks;
//   - Operator: BudgetGauges and Audit, for operators and the jobs worker;
//   - the error codes (docs/semantics.md#errors) and their sentinel errors, matched with errors.Is
//     on the errors of either backend.
package spendcap

import (
	"errors"
	"fmt"

	"github.com/spendcap/spendcap/internal/errcode"
)

// Error codes of docs/semantics.md#arguments: SQLSTATEs in Postgres, error-reply prefixes in Valkey.
const (
	CodeBudgetNotFound      = errcode.BudgetNotFound      // SC001
	CodeInvalidArgument     = errcode.InvalidArgument     // SC002
	CodeIdempotencyConflict = errcode.IdempotencyConflict // SC003
	CodeQuantityOutOfRange  = errcode.QuantityOutOfRange  // SC004
	CodeBudgetConflict      = errcode.BudgetConflict      // SC005
	CodePolicyNotFound      = errcode.PolicyNotFound      // SC006
	CodeReservationNotFound = errcode.ReservationNotFound // SC007
)

// Sentinel errors, one per code. Errors from either backend match them with errors.Is.
var (
	// ErrBudgetNotFound: the named budget does not exist (SC001).
	ErrBudgetNotFound = errors.New("spendcap: budget not found")
	// ErrInvalidArgument: an argument broke a validation rule; the message names it (SC002).
	ErrInvalidArgument = errors.New("spendcap: invalid argument")
	// ErrIdempotencyConflict: a live dedup/idempotency key was reused with other arguments (SC003).
	ErrIdempotencyConflict = errors.New("spendcap: idempotency conflict")
	// ErrQuantityOutOfRange: a usage value would exceed MaxQuantity (SC004).
	ErrQuantityOutOfRange = errors.New("spendcap: quantity out of range")
	// ErrBudgetConflict: create_budget for an existing id with another definition (SC005).
	ErrBudgetConflict = errors.New("spendcap: budget conflict")
	// ErrPolicyNotFound: the named quota policy does not exist (SC006).
	ErrPolicyNotFound = errors.New("spendcap: quota policy not found")
	// ErrReservationNotFound: settle/cancel of an unknown, expired or finished reservation (SC007).
	ErrReservationNotFound = errors.New("spendcap: reservation not found")
)

var sentinels = map[string]error{
	CodeBudgetNotFound:      ErrBudgetNotFound,
	CodeInvalidArgument:     ErrInvalidArgument,
	CodeIdempotencyConflict: ErrIdempotencyConflict,
	CodeQuantityOutOfRange:  ErrQuantityOutOfRange,
	CodeBudgetConflict:      ErrBudgetConflict,
	CodePolicyNotFound:      ErrPolicyNotFound,
	CodeReservationNotFound: ErrReservationNotFound,
}

// MaxQuantity is the largest quantity, usage or limit (2^53-1, exact in Lua's doubles).
const MaxQuantity = 1<<53 - 1

// Error is an error a backend returned with a spendcap error code. It keeps the backend's message (which
// names the argument for SC002) and the error it came from. The backends return it as *Error.
type Error struct {
	Code    string
	Message string
	// Cause is the backend's own error (*pgconn.PgError, a Valkey error reply), when there is one.
	Cause error
}

// Error returns "<code> <message>", the shape of a Valkey error reply.
func (e *Error) Error() string { return fmt.Sprintf("%s %s", e.Code, e.Message) }

// Is matches the sentinel error of the code.
func (e *Error) Is(target error) bool { return sentinels[e.Code] == target }

// Unwrap returns the backend's error.
func (e *Error) Unwrap() error { return e.Cause }
