// Package pgfn holds the typed calls of spendcap's SQL functions, generated from pg_proc
// (functions_gen.go: one params struct, one result struct and one method per function). It is
// internal: users call gobinding.Client, whose types are the spendcap package's; the jobs worker
// calls the job functions here.
package pgfn

//go:generate go run ../cmd/bindgen -out functions_gen.go -package pgfn

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/errcode"
)

// DBTX is what the calls run on: *pgxpool.Pool, *pgx.Conn and pgx.Tx all satisfy it.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Queries holds the generated methods, one per SQL function.
type Queries struct {
	db   DBTX
	mode pgx.QueryExecMode
}

// New returns the calls on db, each run in the given pgx execution mode (which overrides the
// connection's default for these statements only).
func New(db DBTX, mode pgx.QueryExecMode) *Queries { return &Queries{db: db, mode: mode} }

// WithTx returns the calls on tx, in the same execution mode.
func (q *Queries) WithTx(tx pgx.Tx) *Queries { return &Queries{db: tx, mode: q.mode} }

// jsonbText encodes a jsonb argument as JSON text; nil is SQL NULL.
func jsonbText(m map[string]int64) any {
	if m == nil {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil { // a map[string]int64 always encodes
		panic(err)
	}
	return string(b)
}

// jsonText sends a JSON document argument as its text; nil is SQL NULL.
func jsonText(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

// mapError turns a Postgres error with a spendcap error code into a *spendcap.Error.
// collectOne runs sql and reads its one row. A statement that a release deployed while it ran made
// fail (redeployed) runs once more, when it was its own transaction and so wrote nothing.
func collectOne[T any](ctx context.Context, q *Queries, sql string, args []any, fn pgx.RowToFunc[T]) (T, error) {
	for attempt := 0; ; attempt++ {
		rows, err := q.db.Query(ctx, sql, args...)
		var res T
		if err == nil {
			res, err = pgx.CollectExactlyOneRow(rows, fn)
		}
		if err != nil && attempt == 0 && q.mayRunAgain(err) {
			continue
		}
		return res, err
	}
}

// collectRows is collectOne for a function returning rows.
func collectRows[T any](ctx context.Context, q *Queries, sql string, args []any, fn pgx.RowToFunc[T]) ([]T, error) {
	for attempt := 0; ; attempt++ {
		rows, err := q.db.Query(ctx, sql, args...)
		var res []T
		if err == nil {
			res, err = pgx.CollectRows(rows, fn)
		}
		if err != nil && attempt == 0 && q.mayRunAgain(err) {
			continue
		}
		return res, err
	}
}

// mayRunAgain says whether err is PostgreSQL refusing a statement because a release changed the
// result type of the function it calls while it ran (42804: the statement started before the
// deploy and the function returned after it; 0A000: a statement prepared before a release that
// re-created the function now returns other columns), and the statement was its own
// transaction: it failed whole, so running it again counts nothing twice. Inside a caller's
// transaction, which the error aborted, the caller decides.
func (q *Queries) mayRunAgain(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || !(pgErr.Code == "42804" && strings.HasPrefix(pgErr.Message, "function return row and query-specified return row do not match") ||
		pgErr.Code == "0A000" && pgErr.Message == "cached plan must not change result type") {
		return false
	}
	switch db := q.db.(type) {
	case *pgxpool.Pool:
		return true
	case interface{ Conn() *pgx.Conn }: // a pool's connection
		return db.Conn().PgConn().TxStatus() == 'I'
	case *pgx.Conn:
		return db.PgConn().TxStatus() == 'I'
	default: // pgx.Tx, or a DBTX we cannot see into
		return false
	}
}

func mapError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if errcode.Known(pgErr.Code) {
			return &spendcap.Error{Code: pgErr.Code, Message: pgErr.Message, Cause: err}
		}
	}
	return err
}
