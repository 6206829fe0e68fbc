// Package testenv gives tests real PostgreSQL and Valkey servers, one of each per test binary, found
// in this order: a URL from the environment (SPENDCAP_TEST_DATABASE_URL, SPENDCAP_TEST_VALKEY_URL),
// Docker through testcontainers when a daemon answers (SPENDCAP_TEST_NO_DOCKER=1 skips the probe),
// then the server binaries installed on this machine. Each test gets a fresh database cloned from a
// template that `migrate up` prepared once. A server that cannot be had fails the test, saying how
// to install it: tests never skip for want of a server.
//
// Wrap TestMain with Main so the servers stop when the tests end:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// A binary without it gets no server: its servers would outlive it (a local server dies with the
// binary, but its directory stays behind, some 80 MB a run). A program calls Arrange instead.
package testenv

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap/internal/localserver"
	"github.com/spendcap/spendcap/internal/migrator"
)

var (
	pgOnce   sync.Once
	pgServer *postgresServer
	pgErr    error

	vkOnce   sync.Once
	vkServer *valkeyServer
	vkErr    error

	stopMu sync.Mutex
	stops  []func()

	dbSeq atomic.Int64

	// arranged is set by Main and Arrange: Shutdown will run, so servers may start.
	arranged atomic.Bool
)

// Arrange is Main for programs (benchmarks) that use the harness: they defer its result, Shutdown.
func Arrange() func() {
	arranged.Store(true)
	return Shutdown
}

// errNotArranged is why a binary without Main (or a program without Arrange) gets no server.
var errNotArranged = fmt.Errorf("testenv: this binary never stops its servers: add func TestMain(m *testing.M) { testenv.Main(m) } to the package's tests")

// Main runs the tests, then stops the servers this binary started. The programs the tests start
// inherit localserver.UnderTestEnv, so that they too refuse fixed ports.
func Main(m *testing.M) {
	_ = os.Setenv(localserver.UnderTestEnv, "1")
	arranged.Store(true)
	code := m.Run()
	Shutdown()
	os.Exit(code)
}

func onStop(f func()) {
	stopMu.Lock()
	defer stopMu.Unlock()
	stops = append(stops, f)
}

type postgresServer struct {
	adminURL string // superuser, database postgres (or the env URL's database)
	template string // migrated template database
	source   string // "env", "docker" or "local <bindir>"
}

// PostgresSource says where this binary's Postgres came from (for test logs).
func PostgresSource(t testing.TB) string {
	return postgres(t).source
}

func postgres(t testing.TB) *postgresServer {
	t.Helper()
	pgOnce.Do(func() { pgServer, pgErr = startPostgres() })
	if pgErr != nil {
		t.Fatalf("testenv: no PostgreSQL for this test: %v", pgErr)
	}
	return pgServer
}

func startPostgres() (*postgresServer, error) {
	if !arranged.Load() {
		return nil, errNotArranged
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := &postgresServer{}
	switch {
	case os.Getenv("SPENDCAP_TEST_DATABASE_URL") != "":
		s.adminURL, s.source = os.Getenv("SPENDCAP_TEST_DATABASE_URL"), "env"
	case dockerAvailable(ctx):
		u, stop, err := dockerPostgres(ctx)
		if err != nil {
			return nil, fmt.Errorf("docker postgres: %w", err)
		}
		onStop(stop)
		s.adminURL, s.source = u, "docker"
	default:
		p, err := localserver.StartPostgres(ctx, localserver.PostgresOptions{})
		if err != nil {
			return nil, err
		}
		onStop(p.Stop)
		s.adminURL, s.source = p.URL, "local "+p.BinDir
	}
	s.template = fmt.Sprintf("spendcap_tmpl_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6)
	if err := s.exec(ctx, `CREATE DATABASE `+pgx.Identifier{s.template}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create template database: %w", err)
	}
	onStop(func() {
		_ = s.exec(context.Background(), `DROP DATABASE IF EXISTS `+pgx.Identifier{s.template}.Sanitize()+` WITH (FORCE)`)
	})
	m, err := migrator.New(withDatabase(s.adminURL, s.template), migrator.Options{})
	if err != nil {
		return nil, err
	}
	if _, err := m.Up(ctx); err != nil {
		return nil, fmt.Errorf("migrate template database: %w", err)
	}
	fmt.Fprintf(os.Stderr, "testenv: postgres from %s\n", s.source)
	return s, nil
}

func (s *postgresServer) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// AdminURL connects as a superuser to the server's maintenance database (roles, other databases).
func AdminURL(t testing.TB) string {
	return postgres(t).adminURL
}

// NewDatabase creates a fresh migrated database for this test, dropped when the test ends, and
// returns a superuser URL for it.
func NewDatabase(t testing.TB) string {
	return newDatabase(t, true)
}

// NewEmptyDatabase creates a fresh empty database (nothing migrated) for this test.
func NewEmptyDatabase(t testing.TB) string {
	return newDatabase(t, false)
}

func newDatabase(t testing.TB, migrated bool) string {
	t.Helper()
	s := postgres(t)
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), dbSeq.Add(1))
	sql := `CREATE DATABASE ` + pgx.Identifier{name}.Sanitize()
	if migrated {
		sql += ` TEMPLATE ` + pgx.Identifier{s.template}.Sanitize()
	}
	ctx := context.Background()
	if err := s.exec(ctx, sql); err != nil {
		t.Fatalf("testenv: %s: %v", sql, err)
	}
	t.Cleanup(func() {
		if err := s.exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	return withDatabase(s.adminURL, name)
}

// Pool opens a pool on a fresh migrated database, closed when the test ends.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return PoolFor(t, NewDatabase(t))
}

// PoolFor opens a pool on url, closed when the test ends.
func PoolFor(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatalf("testenv: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// WithDatabase returns connString pointing at database name instead.
func WithDatabase(connString, name string) string {
	return localserver.WithDatabase(connString, name)
}

// WithUser returns connString connecting as user (no password: the harness servers trust loopback).
func WithUser(connString, user string) string {
	if u, err := url.Parse(connString); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.User = url.User(user)
		return u.String()
	}
	return connString + " user=" + user + " password=''"
}

func withDatabase(connString, name string) string {
	return localserver.WithDatabase(connString, name)
}

type valkeyServer struct {
	url    string
	source string
}

// ValkeyURL returns the URL of this binary's Valkey server, starting it on first use.
func ValkeyURL(t testing.TB) string {
	t.Helper()
	vkOnce.Do(func() { vkServer, vkErr = startValkey() })
	if vkErr != nil {
		t.Fatalf("testenv: no Valkey for this test: %v", vkErr)
	}
	return vkServer.url
}

// ValkeySource says where this binary's Valkey came from.
func ValkeySource(t testing.TB) string {
	ValkeyURL(t)
	return vkServer.source
}

var valkeyDB atomic.Int64

// Valkey returns a client of this binary's Valkey server on a logical database of its own, empty
// and closed when the test ends. (Function libraries are server-wide; keys are per database.)
func Valkey(t testing.TB) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(ValkeyURL(t))
	if err != nil {
		t.Fatalf("testenv: valkey url: %v", err)
	}
	opts.DB = int(valkeyDB.Add(1)) % localserver.Databases
	c := redis.NewClient(opts)
	t.Cleanup(func() {
		_ = c.FlushDB(context.Background()).Err()
		_ = c.Close()
	})
	// A server from SPENDCAP_TEST_VALKEY_URL may hold keys from an earlier run.
	if err := c.FlushDB(context.Background()).Err(); err != nil {
		t.Fatalf("testenv: valkey database %d: %v (local servers run with --databases %d)", opts.DB, err, localserver.Databases)
	}
	return c
}

func startValkey() (*valkeyServer, error) {
	if !arranged.Load() {
		return nil, errNotArranged
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	switch {
	case os.Getenv("SPENDCAP_TEST_VALKEY_URL") != "":
		return &valkeyServer{url: os.Getenv("SPENDCAP_TEST_VALKEY_URL"), source: "env"}, nil
	case dockerAvailable(ctx):
		u, stop, err := dockerValkey(ctx)
		if err != nil {
			return nil, fmt.Errorf("docker valkey: %w", err)
		}
		onStop(stop)
		return &valkeyServer{url: u, source: "docker"}, nil
	default:
		v, err := localserver.StartValkey(ctx, localserver.ValkeyOptions{})
		if err != nil {
			return nil, err
		}
		onStop(v.Stop)
		fmt.Fprintf(os.Stderr, "testenv: valkey from local valkey-server at %s\n", v.Addr)
		return &valkeyServer{url: v.URL, source: "local"}, nil
	}
}

// panicTB lets examples, which have no *testing.T, use the harness: a failure panics.
type panicTB struct{ testing.TB }

func (panicTB) Helper()                           {}
func (panicTB) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (panicTB) Errorf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (panicTB) Cleanup(f func())                  { onStop(f) }

// ExampleDatabase returns the URL of a fresh migrated database for a runnable example, dropped
// when the test binary ends (Main). It panics when no server can be had.
func ExampleDatabase() string {
	return NewDatabase(panicTB{})
}

// MustValkeyURL is ValkeyURL for programs without a *testing.T (benchmarks): it panics when no
// server can be had.
func MustValkeyURL() string {
	return ValkeyURL(panicTB{})
}

// OnShutdown runs f at Shutdown (or at the end of Main), before the servers started earlier stop.
func OnShutdown(f func()) { onStop(f) }

// Shutdown stops the servers started so far; Main does it for test binaries.
func Shutdown() {
	stopMu.Lock()
	defer stopMu.Unlock()
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
	stops = nil
}

var (
	bouncerOnce sync.Once
	bouncer     *localserver.PgBouncer
	bouncerErr  error
)

// ThroughPgBouncer returns dbURL (a URL of this binary's Postgres, from NewDatabase) routed through
// a pgbouncer in transaction pooling mode, started once per test binary from the local binary. Its
// two server connections per database are handed out round robin, so consecutive transactions of
// one client run on different server connections.
func ThroughPgBouncer(t testing.TB, dbURL string) string {
	t.Helper()
	s := postgres(t)
	bouncerOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		bouncer, bouncerErr = localserver.StartPgBouncer(ctx, localserver.PgBouncerOptions{Upstream: s.adminURL})
		if bouncerErr == nil {
			onStop(bouncer.Stop)
			fmt.Fprintf(os.Stderr, "testenv: pgbouncer on port %d in front of postgres from %s\n", bouncer.Port, s.source)
		}
	})
	if bouncerErr != nil {
		t.Fatalf("testenv: no pgbouncer for this test: %v", bouncerErr)
	}
	return bouncer.URL(dbURL)
}
