// Package pgfn holds the typed calls of spendcap's SQL functions, generated from pg_proc
// (functions_gen.go: one params struct, one result struct and one method per function). It is
// internal: users call gobinding.Client, whose types are the spendcap package's; the jobs worker
// calls the job functions here.
package v030

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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
func mapError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if errcode.Known(pgErr.Code) {
			return &spendcap.Error{Code: pgErr.Code, Message: pgErr.Message, Cause: err}
		}
	}
	return err
}
