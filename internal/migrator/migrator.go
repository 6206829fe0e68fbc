// Package migrator deploys spendcap's database: the versioned schema (golang-migrate), the PL/pgSQL
// API in sql/functions (re-applied in one transaction when a file changes) and River's own schema,
// all under one advisory lock so that concurrent deploys are safe. cmd/migrate is its command line;
// the test harness and the dev environment use it directly.
package migrator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

const (
	// MigrationsTable is golang-migrate's version table, in schema public so that migrating down
	// to 0 (which drops schema spendcap) keeps it.
	MigrationsTable = "spendcap_schema_migrations"
	// FunctionsTable records the sha256 of each applied sql/functions file.
	FunctionsTable = "spendcap_functions"
	// DefaultLockTimeout is how long a deploy waits for another one to finish.
	DefaultLockTimeout = 5 * time.Minute

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

// Up applies pending schema migrations, then changed function files, then River's migrations.
// A cancelled ctx lets the running step finish and returns ErrInterrupted before the next one.
func (m *Migrator) Up(ctx context.Context) (*UpResult, error) {
	start := time.Now()
	res := &UpResult{Schema: SchemaChange{Applied: []uint{}}, Functions: FunctionChange{Applied: []string{}}, River: RiverChange{Applied: []int{}}}
	err := m.withLock(ctx, func(conn *pgx.Conn) error {
		steps := []func() error{
			func() error { return m.upSchema(ctx, conn, &res.Schema) },
			func() error { return m.applyFunctions(context.WithoutCancel(ctx), conn, &res.Functions) },
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

// DownResult reports what Down reverted.
type DownResult struct {
	Schema     SchemaChange `json:"schema"`
	DurationMS int64        `json:"duration_ms"`
}

// Down reverts the newest n schema migrations (fewer when fewer are applied). Function records are
// cleared so that the next Up re-applies every function file onto the reverted schema.
func (m *Migrator) Down(ctx context.Context, n int) (*DownResult, error) {
	if n < 1 {
		return nil, fmt.Errorf("down: N must be at least 1")
	}
	start := time.Now()
	res := &DownResult{Schema: SchemaChange{Applied: []uint{}}}
	err := m.withLock(ctx, func(conn *pgx.Conn) error {
		mg, src, err := m.golangMigrate()
		if err != nil {
			return err
		}
		defer mg.Close()
		v, dirty, err := mg.Version()
		if errors.Is(err, migrate.ErrNilVersion) {
			return nil
		} else if err != nil {
			return migrateError(err)
		}
		if dirty {
			return &DirtyError{Version: int(v)}
		}
		res.Schema.From, res.Schema.To = v, v
		var reverted []uint
		for cur := v; len(reverted) < n; {
			reverted = append(reverted, cur)
			prev, err := src.Prev(cur)
			if err != nil {
				break
			}
			cur = prev
		}
		stop := watchStop(ctx, mg)
		defer stop()
		if err := mg.Steps(-len(reverted)); err != nil {
			return migrateError(err)
		}
		to, _, err := mg.Version()
		if errors.Is(err, migrate.ErrNilVersion) {
			to = 0
		} else if err != nil {
			return migrateError(err)
		}
		res.Schema.To = to
		for _, r := range reverted {
			if r > to {
				res.Schema.Applied = append(res.Schema.Applied, r)
			}
		}
		if err := m.clearFunctionRecords(context.WithoutCancel(ctx), conn); err != nil {
			return err
		}
		if ctx.Err() != nil && to != v-uint(len(reverted)) && to > 0 {
			return ErrInterrupted
		}
		return nil
	})
	res.DurationMS = time.Since(start).Milliseconds()
	return res, err
}

// Force sets the schema version without running anything and clears the dirty flag (-1: no version).
func (m *Migrator) Force(ctx context.Context, version int) error {
	if version < -1 {
		return fmt.Errorf("force: version must be -1 or more")
	}
	return m.withLock(ctx, func(conn *pgx.Conn) error {
		mg, _, err := m.golangMigrate()
		if err != nil {
			return err
		}
		defer mg.Close()
		if err := mg.Force(version); err != nil {
			return migrateError(err)
		}
		return m.clearFunctionRecords(ctx, conn)
	})
}

// Version returns the schema version (0 when none) and whether it is dirty, without writing.
func (m *Migrator) Version(ctx context.Context) (uint, bool, error) {
	conn, err := m.connect(ctx)
	if err != nil {
		return 0, false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return schemaVersion(ctx, conn)
}

func (m *Migrator) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, m.connConfig)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return conn, nil
}

// withLock runs fn holding the deploy lock on a dedicated connection.
func (m *Migrator) withLock(ctx context.Context, fn func(conn *pgx.Conn) error) error {
	conn, err := m.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	deadline := time.Now().Add(m.opts.LockTimeout)
	logged := false
	for {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, LockKey).Scan(&ok); err != nil {
			if ctx.Err() != nil {
				return ErrInterrupted
			}
			return fmt.Errorf("deploy lock: %w", err)
		}
		if ok {
			break
		}
		if !logged {
			m.opts.Logger.Info("waiting for the deploy lock held by another migrate", "timeout", m.opts.LockTimeout)
			logged = true
		}
		if time.Now().After(deadline) {
			return ErrLockTimeout
		}
		select {
		case <-ctx.Done():
			return ErrInterrupted
		case <-time.After(100 * time.Millisecond):
		}
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, LockKey)
	}()
	return fn(conn)
}

func (m *Migrator) golangMigrate() (*migrate.Migrate, source.Driver, error) {
	db := stdlib.OpenDB(*m.connConfig)
	drv, err := migratepgx.WithInstance(db, &migratepgx.Config{MigrationsTable: MigrationsTable, SchemaName: "public"})
	if err != nil {
		_ = db.Close()
		return nil, nil, migrateError(err)
	}
	src, err := newSource(m.opts.FS)
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	mg, err := migrate.NewWithInstance("iofs", src, "pgx5", drv)
	if err != nil {
		return nil, nil, migrateError(err)
	}
	mg.Log = migrateLogger{m.opts.Logger}
	mg.LockTimeout = m.opts.LockTimeout
	return mg, src, nil
}

// watchStop turns a cancelled ctx into golang-migrate's graceful stop (after the current file).
func watchStop(ctx context.Context, mg *migrate.Migrate) (stop func()) {
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			select {
			case mg.GracefulStop <- true:
			default:
			}
		case <-done:
		}
	}()
	return func() { close(done) }
}

func (m *Migrator) upSchema(ctx context.Context, conn *pgx.Conn, res *SchemaChange) error {
	from, dirty, err := schemaVersion(ctx, conn)
	if err != nil {
		return err
	}
	if dirty {
		return &DirtyError{Version: int(from)}
	}
	res.From, res.To = from, from
	mg, _, err := m.golangMigrate()
	if err != nil {
		return err
	}
	defer mg.Close()
	stop := watchStop(ctx, mg)
	defer stop()
	if err := mg.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return migrateError(err)
	}
	to, _, err := schemaVersion(context.WithoutCancel(ctx), conn)
	if err != nil {
		return err
	}
	res.To = to
	for _, v := range sourceVersions(m.opts.FS) {
		if v > from && v <= to {
			res.Applied = append(res.Applied, v)
		}
	}
	if len(res.Applied) > 0 {
		m.opts.Logger.Info("schema migrated", "component", "schema", "from", from, "to", to)
	}
	return nil
}

// FunctionFile is one file of sql/functions.
type FunctionFile struct {
	Name   string
	SHA256 string
	SQL    string
}

// FunctionFiles lists the functions/ files of fsys (nil: the embedded ones) in the order they are
// applied, by file name.
func FunctionFiles(fsys fs.FS) ([]FunctionFile, error) {
	fsys = sqlFS(fsys)
	entries, err := fs.ReadDir(fsys, "functions")
	if err != nil {
		return nil, err
	}
	var files []FunctionFile
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		b, err := fs.ReadFile(fsys, path.Join("functions", e.Name()))
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		files = append(files, FunctionFile{Name: e.Name(), SHA256: hex.EncodeToString(sum[:]), SQL: string(b)})
	}
	slices.SortFunc(files, func(a, b FunctionFile) int { return strings.Compare(a.Name, b.Name) })
	return files, nil
}

type functionRecord struct {
	sha256        string
	schemaVersion int64
}

func functionRecords(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
	QueryRow(context.Context, string, ...any) pgx.Row
}) (map[string]functionRecord, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('public.`+FunctionsTable+`') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, err
	}
	recs := map[string]functionRecord{}
	if !exists {
		return recs, nil
	}
	rows, err := q.Query(ctx, `SELECT name, sha256, schema_version FROM public.`+FunctionsTable)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var r functionRecord
		if err := rows.Scan(&name, &r.sha256, &r.schemaVersion); err != nil {
			return nil, err
		}
		recs[name] = r
	}
	return recs, rows.Err()
}

// applyFunctions applies, in one transaction, every function file whose sha256 or schema version
// differs from its record, then refuses the result if any function name became overloaded.
func (m *Migrator) applyFunctions(ctx context.Context, conn *pgx.Conn, res *FunctionChange) error {
	files, err := FunctionFiles(m.opts.FS)
	if err != nil {
		return err
	}
	version, _, err := schemaVersion(ctx, conn)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL client_min_messages = warning`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, functionsTableDDL); err != nil {
			return fmt.Errorf("functions table: %w", err)
		}
		recs, err := functionRecords(ctx, tx)
		if err != nil {
			return err
		}
		for _, f := range files {
			if r, ok := recs[f.Name]; ok && r.sha256 == f.SHA256 && r.schemaVersion == int64(version) {
				res.Unchanged++
				continue
			}
			if _, err := tx.Exec(ctx, f.SQL); err != nil {
				return fmt.Errorf("functions/%s: %w", f.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO public.`+FunctionsTable+` (name, sha256, schema_version) VALUES ($1, $2, $3)
				ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256, schema_version = excluded.schema_version, applied_at = now()`,
				f.Name, f.SHA256, int64(version)); err != nil {
				return err
			}
			res.Applied = append(res.Applied, f.Name)
		}
		if err := dropRemoved(ctx, tx, files, res); err != nil {
			return err
		}
		var overloaded []string
		rows, err := tx.Query(ctx, `SELECT n.nspname || '.' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
			WHERE n.nspname IN ('spendcap', 'spendcap_internal') GROUP BY 1 HAVING count(*) > 1 ORDER BY 1`)
		if err != nil {
			return err
		}
		overloaded, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if len(overloaded) > 0 {
			return fmt.Errorf("functions: overloaded after apply (a signature changed without dropping the old one): %s", strings.Join(overloaded, ", "))
		}
		if len(res.Dropped) > 0 || len(res.Removed) > 0 {
			m.opts.Logger.Info("functions of removed files dropped", "component", "functions", "files", res.Removed, "dropped", res.Dropped)
		}
		if len(res.Applied) > 0 {
			m.opts.Logger.Info("functions applied", "component", "functions", "files", len(res.Applied), "unchanged", res.Unchanged)
		}
		return nil
	})
}

// functionSchemas are the schemas whose functions sql/functions owns: every function there is
// defined by a file, and one that no file defines is left over from a deleted or renamed file.
var functionSchemas = []string{"spendcap", "spendcap_internal"}

// createFunction finds the functions a file defines: names are qualified, and never overloaded
// (applyFunctions refuses that), so a qualified name is one function.
var createFunction = regexp.MustCompile(`(?i)\bcreate\s+(?:or\s+replace\s+)?(?:function|procedure)\s+"?([a-z_][a-z0-9_]*)"?\s*\.\s*"?([a-z_][a-z0-9_]*)"?\s*\(`)

// definedFunctions are the schema-qualified names (lower case) of the functions files define.
func definedFunctions(files []FunctionFile) map[string]bool {
	names := map[string]bool{}
	for _, f := range files {
		for _, m := range createFunction.FindAllStringSubmatch(f.SQL, -1) {
			names[strings.ToLower(m[1])+"."+strings.ToLower(m[2])] = true
		}
	}
	return names
}

// leftoverFunctions lists, as regprocedure text, the functions of functionSchemas that no file in
// files defines.
func leftoverFunctions(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, files []FunctionFile) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT n.nspname || '.' || p.proname, p.oid::regprocedure::text FROM pg_proc p
		JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = ANY($1) ORDER BY 2`, functionSchemas)
	if err != nil {
		return nil, err
	}
	defined := definedFunctions(files)
	var out []string
	var name, sig string
	_, err = pgx.ForEachRow(rows, []any{&name, &sig}, func() error {
		if !defined[name] {
			out = append(out, sig)
		}
		return nil
	})
	return out, err
}

// dropRemoved drops the functions no file defines any more and forgets the records of files that
// are gone, so a deleted or renamed file leaves nothing callable behind.
func dropRemoved(ctx context.Context, tx pgx.Tx, files []FunctionFile, res *FunctionChange) error {
	leftover, err := leftoverFunctions(ctx, tx, files)
	if err != nil {
		return err
	}
	for _, sig := range leftover {
		// No CASCADE: a view or another object built on the function stops the deploy instead of
		// vanishing with it.
		if _, err := tx.Exec(ctx, `DROP FUNCTION `+sig); err != nil {
			return fmt.Errorf("functions: drop %s, which no file defines any more: %w", sig, err)
		}
		res.Dropped = append(res.Dropped, sig)
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name
	}
	rows, err := tx.Query(ctx, `DELETE FROM public.`+FunctionsTable+` WHERE name <> ALL($1) RETURNING name`, names)
	if err != nil {
		return err
	}
	removed, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	slices.Sort(removed)
	res.Removed = append(res.Removed, removed...)
	return nil
}

func (m *Migrator) clearFunctionRecords(ctx context.Context, conn *pgx.Conn) error {
	_, err := conn.Exec(ctx, `DO $clear$ BEGIN
		IF to_regclass('public.`+FunctionsTable+`') IS NOT NULL THEN DELETE FROM public.`+FunctionsTable+`; END IF;
	END $clear$`)
	return err
}

func (m *Migrator) riverMigrator(ctx context.Context) (*rivermigrate.Migrator[pgx.Tx], *pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(m.connString)
	if err != nil {
		return nil, nil, fmt.Errorf("database url: %w", err)
	}
	pcfg.ConnConfig = m.connConfig.Copy()
	pcfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	rm, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: m.opts.Logger.With("component", "river")})
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return rm, pool, nil
}

func (m *Migrator) upRiver(ctx context.Context, res *RiverChange) error {
	rm, pool, err := m.riverMigrator(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	out, err := rm.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	for _, v := range out.Versions {
		res.Applied = append(res.Applied, v.Version)
	}
	if len(res.Applied) > 0 {
		m.opts.Logger.Info("river migrated", "component", "river", "applied", res.Applied)
	}
	return nil
}

func schemaVersion(ctx context.Context, conn *pgx.Conn) (uint, bool, error) {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('public.`+MigrationsTable+`') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, false, err
	}
	if !exists {
		return 0, false, nil
	}
	var v int64
	var dirty bool
	err := conn.QueryRow(ctx, `SELECT version, dirty FROM public.`+MigrationsTable+` LIMIT 1`).Scan(&v, &dirty)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && v < 0) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return uint(v), dirty, nil
}

// migrateError turns golang-migrate errors into ours: a typed dirty error and a short message
// (its database.Error carries the whole failing file, which is no use on one log line).
func migrateError(err error) error {
	var de migrate.ErrDirty
	if errors.As(err, &de) {
		return &DirtyError{Version: de.Version}
	}
	if errors.Is(err, migrate.ErrLockTimeout) {
		return ErrLockTimeout
	}
	msg := err.Error()
	if i := strings.Index(msg, " in line "); i >= 0 {
		if j := strings.Index(msg[i:], ": "); j >= 0 {
			// "migration failed: <pg error> in line N: <whole file>" → keep the pg error and line.
			msg = msg[:i+j]
		}
	}
	return errors.New(msg)
}

type migrateLogger struct{ l *slog.Logger }

func (l migrateLogger) Printf(format string, v ...any) {
	l.l.Info(strings.TrimSpace(fmt.Sprintf(format, v...)), "component", "schema")
}

func (l migrateLogger) Verbose() bool { return l.l.Enabled(context.Background(), slog.LevelDebug) }
