// Package migrator deploys spendcap's database: the versioned schema (golang-migrate's files and
// version table) and the PL/pgSQL API in sql/functions, applied together in one transaction, then
// River's own schema, all under one advisory lock so that concurrent deploys are safe. cmd/migrate is its command line;
// the test harness and the dev environment use it directly.
package migrator

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// MigrationsTable is golang-migrate's version table, in schema public so that migrating down
	// to 0 (which drops schema spendcap) keeps it.
	MigrationsTable = "spendcap_schema_migrations"
	// FunctionsTable records the sha256 of each applied sql/functions file.
	FunctionsTable = "spendcap_functions"
	// DefaultLockTimeout is how long a deploy waits for another one to finish, and how long it
	// keeps trying to close the deploy gate.
	DefaultLockTimeout = 5 * time.Minute
	// DefaultGateTimeout bounds each lock wait of the deploy transaction (PostgreSQL's
	// lock_timeout), and so how long calls wait at the deploy gate for one attempt.
	DefaultGateTimeout = 3 * time.Second

	// LockKey is the pg_advisory_lock key that serialises deploys; `migrate sql` scripts take it
	// too (as a transaction lock).
	LockKey int64 = 0x5c0de11a9e5a1e01

	functionsTableDDL = `CREATE TABLE IF NOT EXISTS public.` + FunctionsTable + ` (
    name           text        NOT NULL PRIMARY KEY,
    sha256         text        NOT NULL,
    schema_version bigint      NOT NULL,
    applied_at     timestamptz NOT NULL DEFAULT now()
)`
	migrationsTableDDL = `CREATE TABLE IF NOT EXISTS "public"."` + MigrationsTable + `" (version bigint not null primary key, dirty boolean not null)`
)

// ErrLockTimeout means another deploy held the lock for longer than the lock timeout.
var ErrLockTimeout = errors.New("timed out waiting for the deploy lock (another migrate is running)")

// ErrInterrupted means the context was cancelled: the step that was running finished, later steps
// did not start. Running the command again continues.
var ErrInterrupted = errors.New("interrupted: the running step finished, the rest did not start; run the command again")

// DirtyError means a schema migration failed half-way in an earlier run. Each migration file runs in
// one transaction, so its changes were rolled back: force the previous version and run up again.
type DirtyError struct {
	Version int
}

func (e *DirtyError) Error() string {
	return fmt.Sprintf("schema is dirty at version %d: a migration failed; after fixing the cause run `migrate force %d` then `migrate up`",
		e.Version, e.Version-1)
}

// Options configure a Migrator.
type Options struct {
	// LockTimeout bounds the wait for the deploy lock. Defaults to DefaultLockTimeout.
	LockTimeout time.Duration
	// GateTimeout bounds each lock wait of the deploy transaction: a transaction that called
	// spendcap and stays open longer makes the deploy give up that attempt (releasing the calls
	// held at the gate) and try again. Defaults to DefaultGateTimeout.
	GateTimeout time.Duration
	// Logger receives progress logs. Defaults to discarding them.
	Logger *slog.Logger
	// FS holds migrations/ and functions/. Defaults to the embedded sql.FS; tests substitute it.
	FS fs.FS
}

// Migrator runs deploy commands against one database.
type Migrator struct {
	connString string
	connConfig *pgx.ConnConfig
	opts       Options
}

// New parses the connection string (a URL or keyword DSN; "" reads the standard PG* variables).
func New(connString string, opts Options) (*Migrator, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "spendcap-migrate"
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if opts.GateTimeout <= 0 {
		opts.GateTimeout = DefaultGateTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.FS = sqlFS(opts.FS)
	return &Migrator{connString: connString, connConfig: cfg, opts: opts}, nil
}

// Target describes the database for logs, without credentials.
func (m *Migrator) Target() string {
	return fmt.Sprintf("host=%s port=%d database=%s user=%s", m.connConfig.Host, m.connConfig.Port, m.connConfig.Database, m.connConfig.User)
}

// UpResult reports what Up applied.
type UpResult struct {
	// Release is the release deployed (the last line of sql/releases.txt).
	Release    string         `json:"release"`
	Schema     SchemaChange   `json:"schema"`
	Functions  FunctionChange `json:"functions"`
	River      RiverChange    `json:"river"`
	DurationMS int64          `json:"duration_ms"`
}

// SchemaChange is the schema part of a result.
type SchemaChange struct {
	From    uint   `json:"from"`
	To      uint   `json:"to"`
	Applied []uint `json:"applied"`
}

// FunctionChange is the functions part of a result.
type FunctionChange struct {
	Applied   []string `json:"applied"`
	Unchanged int      `json:"unchanged"`
	// Removed are the files recorded as applied that are no longer in sql/functions (deleted or
	// renamed); Dropped are the functions that no file defines any more, dropped by this run.
	Removed []string `json:"removed"`
	Dropped []string `json:"dropped"`
}

// RiverChange is the River part of a result.
type RiverChange struct {
	Applied []int `json:"applied"`
}

// Up applies pending schema migrations and changed function files in one transaction, then
// River's migrations. A cancelled ctx lets the running step finish and returns ErrInterrupted
// before the next one.
func (m *Migrator) Up(ctx context.Context) (*UpResult, error) {
	start := time.Now()
	res := &UpResult{Schema: SchemaChange{Applied: []uint{}}, Functions: FunctionChange{Applied: []string{}}, River: RiverChange{Applied: []int{}}}
	err := m.withLock(ctx, func(conn *pgx.Conn) error {
		steps := []func() error{
			func() error { return m.deploy(context.WithoutCancel(ctx), conn, res) },
			func() error { return m.upRiver(context.WithoutCancel(ctx), &res.River) },
		}
		for _, step := range steps {
			if ctx.Err() != nil {
				return ErrInterrupted
			}
			if err := step(); err != nil {
				return err
			}
		}
		return nil
	})
	res.DurationMS = time.Since(start).Milliseconds()
	return res, err
}

func (m *Migrator) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, m.connConfig)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return conn, nil
}
