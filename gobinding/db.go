package gobinding

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/spendcap/spendcap"
)

// DBTX is what the bindings run on: *pgxpool.Pool, *pgx.Conn and pgx.Tx all satisfy it.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Queries holds the generated methods, one per SQL function.
type Queries struct {
	db DBTX
}

// New returns the generated bindings on db.
func New(db DBTX) *Queries { return &Queries{db: db} }

// WithTx returns the bindings on tx.
func (q *Queries) WithTx(tx pgx.Tx) *Queries { return &Queries{db: tx} }

// mapError turns a Postgres error with a SPEC code into a *spendcap.Error.
func mapError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if e := spendcap.NewError(pgErr.Code, pgErr.Message, err); e != nil {
			return e
		}
	}
	return err
}
