// Package devenv runs spendcap's embedded default for development: a local PostgreSQL and Valkey
// whose data persists in one directory (./.spendcap by default), with the database migrated.
package devenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap/internal/localserver"
	"github.com/spendcap/spendcap/internal/migrator"
	"github.com/spendcap/spendcap/valkey"
)

// Default ports of `make dev`, tried first so that connection strings stay the same between runs.
// They are for `make dev` alone: tests leave Options' ports 0 (any free port), since packages
// that start servers run at the same time.
const (
	DefaultPostgresPort = 54329
	DefaultValkeyPort   = 63799
	// Database is the name of the dev database.
	Database = "spendcap"
)

// Options configure Start.
type Options struct {
	// Dir keeps both servers' data between runs (./.spendcap for `make dev`).
	Dir string
	// PostgresPort and ValkeyPort are tried first (a free port is taken when one is busy); 0
	// means any free port.
	PostgresPort, ValkeyPort int
	// Logger receives the servers' start-up and the migration's logs.
	Logger *slog.Logger
}

// Env is a running dev environment.
type Env struct {
	// DatabaseURL connects to the migrated dev database as superuser.
	DatabaseURL string
	// ValkeyURL connects to the dev Valkey.
	ValkeyURL string
	// ValkeyAddr is the dev Valkey's host:port.
	ValkeyAddr string
	pg         *localserver.Postgres
	vk         *localserver.Valkey
}

// Start brings up Postgres and Valkey with their data in opts.Dir, creates and migrates the
// database, and loads the Valkey library.
func Start(ctx context.Context, opts Options) (*Env, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	pg, err := localserver.StartPostgres(ctx, localserver.PostgresOptions{
		Dir: filepath.Join(opts.Dir, "postgres"), Durable: true, Port: opts.PostgresPort, MaxConnections: 100})
	if err != nil {
		return nil, err
	}
	env := &Env{pg: pg}
	logger.Info("postgres started", "dir", pg.Dir, "port", pg.Port)
	env.vk, err = localserver.StartValkey(ctx, localserver.ValkeyOptions{
		Dir: filepath.Join(opts.Dir, "valkey"), Durable: true, Port: opts.ValkeyPort})
	if err != nil {
		env.Stop()
		return nil, err
	}
	env.ValkeyURL, env.ValkeyAddr = env.vk.URL, env.vk.Addr
	logger.Info("valkey started", "dir", env.vk.Dir, "addr", env.vk.Addr)

	conn, err := pgx.Connect(ctx, pg.URL)
	if err != nil {
		env.Stop()
		return nil, err
	}
	_, err = conn.Exec(ctx, `CREATE DATABASE `+Database)
	_ = conn.Close(ctx)
	var pgErr *pgconn.PgError
	if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "42P04") { // 42P04: exists from an earlier run
		env.Stop()
		return nil, fmt.Errorf("create database: %w", err)
	}
	env.DatabaseURL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", pg.Port, Database)
	m, err := migrator.New(env.DatabaseURL, migrator.Options{Logger: logger})
	if err != nil {
		env.Stop()
		return nil, err
	}
	if _, err := m.Up(ctx); err != nil {
		env.Stop()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: env.ValkeyAddr})
	defer rdb.Close()
	// New loads the library and warns (on logger) about a server older than production needs.
	if _, err := valkey.NewClient(ctx, rdb, valkey.Options{Logger: logger}); err != nil {
		env.Stop()
		return nil, err
	}
	return env, nil
}

// Stop shuts both servers down; their data stays for the next run.
func (e *Env) Stop() {
	if e.vk != nil {
		e.vk.Stop()
	}
	if e.pg != nil {
		e.pg.Stop()
	}
}
