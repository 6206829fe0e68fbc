package migrator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

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

// VersionInfo is what `migrate version` reports.
type VersionInfo struct {
	// Version is the schema version (0 when none); Dirty is golang-migrate's dirty flag.
	Version uint `json:"version"`
	Dirty   bool `json:"dirty"`
	// Release is the release last deployed on the database ("" when unknown); ReleaseInferred is
	// true when it was read from the schema version of a database that predates release records.
	Release         string `json:"release"`
	ReleaseInferred bool   `json:"release_inferred"`
	// BinaryRelease is the release this migrate deploys.
	BinaryRelease string `json:"binary_release"`
}

// Text renders the version for people: "17 (release v0.4.0)", "17 (dirty, release v0.4.0)", or
// without a known release "17", "17 (dirty)".
func (v VersionInfo) Text() string {
	var notes []string
	if v.Dirty {
		notes = append(notes, "dirty")
	}
	if v.Release != "" {
		notes = append(notes, "release "+releaseText(v.Release, v.ReleaseInferred))
	}
	if len(notes) == 0 {
		return fmt.Sprintf("%d\n", v.Version)
	}
	return fmt.Sprintf("%d (%s)\n", v.Version, strings.Join(notes, ", "))
}

// VersionInfo reads the schema version and the database's release, without writing.
func (m *Migrator) VersionInfo(ctx context.Context) (*VersionInfo, error) {
	conn, err := m.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	v := &VersionInfo{BinaryRelease: CurrentRelease(m.opts.FS)}
	if v.Version, v.Dirty, err = schemaVersion(ctx, conn); err != nil {
		return nil, err
	}
	if v.Release, v.ReleaseInferred, err = databaseRelease(ctx, conn, m.opts.FS, v.Version); err != nil {
		return nil, err
	}
	return v, nil
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
