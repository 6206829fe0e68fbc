// Package localserver starts PostgreSQL and Valkey from the server binaries installed on this
// machine, on free loopback ports, for tests and for `make dev`. Postgres refuses to run as root,
// so when we are root it runs as the `postgres` user.
package localserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresInstallHint tells how to get the server binaries.
const PostgresInstallHint = "install PostgreSQL 15 server binaries (`make deps`, or `apt-get install postgresql-15`), " +
	"or set SPENDCAP_PG_BIN to a directory holding initdb and postgres"

// PostgresOptions configure StartPostgres.
type PostgresOptions struct {
	// Dir holds the data directory and the server log. Empty means a new temporary directory,
	// removed by Stop; a given Dir is kept and reused by the next start.
	Dir string
	// Durable keeps fsync and full-page writes on (dev data); tests turn them off for speed.
	Durable bool
	// MaxConnections defaults to 300.
	MaxConnections int
	// StandbyOf makes the server a streaming standby of that primary: its data directory is a
	// base backup of the primary (pg_basebackup -R) instead of a new cluster. The primary's
	// synchronous_standby_names decides whether commits wait for it.
	StandbyOf *Postgres
	// Port is tried first when not 0; a free port is used when it is taken. Tests must leave it
	// 0: StartPostgres refuses a fixed port under test (see UnderTestEnv).
	Port int
}

// Postgres is a running local PostgreSQL server. Its superuser is `postgres`, trusted on loopback.
type Postgres struct {
	// URL connects as superuser to database postgres.
	URL     string
	Host    string
	Port    int
	BinDir  string
	Dir     string
	cmd     *exec.Cmd
	exited  chan struct{}
	tempDir bool
	origDir string // Dir before relocation
	args    []string
	cred    *syscall.Credential
}

// FindPostgresBin returns a directory holding initdb and postgres: $SPENDCAP_PG_BIN, else the newest
// /usr/lib/postgresql/*/bin, else `pg_config --bindir`.
func FindPostgresBin() (string, error) {
	var candidates []string
	if d := os.Getenv("SPENDCAP_PG_BIN"); d != "" {
		candidates = append(candidates, d)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return versionOf(b) - versionOf(a) })
	candidates = append(candidates, dirs...)
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	for _, d := range candidates {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("postgres server binaries not found (looked in $SPENDCAP_PG_BIN, /usr/lib/postgresql/*/bin, pg_config): %s", PostgresInstallHint)
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// StartPostgres initialises the data directory when it is new and starts the server.
func StartPostgres(ctx context.Context, opts PostgresOptions) (*Postgres, error) {
	if err := refuseFixedPort("postgres", opts.Port); err != nil {
		return nil, err
	}
	bin, err := FindPostgresBin()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	p := &Postgres{BinDir: bin, Dir: opts.Dir, Host: "127.0.0.1"}
	if p.Dir == "" {
		if p.Dir, err = os.MkdirTemp("", "spendcap-pg-"); err != nil {
			return nil, err
		}
		p.tempDir = true
	} else if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return nil, err
	}
	if p.Dir, err = filepath.Abs(p.Dir); err != nil {
		return nil, err
	}
	p.origDir = p.Dir
	ok := false
	defer func() {
		if !ok && p.tempDir {
			_ = os.RemoveAll(p.Dir)
			_ = os.RemoveAll(p.origDir)
		}
	}()
	if cred != nil && !reachableAs(cred, p.Dir) {
		// The postgres user cannot traverse a parent (say /root is 0700): keep the data under
		// /var/lib/spendcap instead, linked from the requested directory so it persists the same.
		if p.Dir, err = relocate(p.Dir); err != nil {
			return nil, err
		}
	}
	if err := chownTree(p.Dir, cred); err != nil {
		return nil, err
	}
	dataDir := filepath.Join(p.Dir, "data")
	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) && opts.StandbyOf != nil {
		backup := exec.CommandContext(ctx, filepath.Join(bin, "pg_basebackup"), "-D", dataDir,
			"-d", fmt.Sprintf("host=127.0.0.1 port=%d user=postgres", opts.StandbyOf.Port), "-R", "-X", "stream", "-c", "fast", "--no-sync")
		backup.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if out, err := backup.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("pg_basebackup: %v: %s", err, lastLines(string(out), 5))
		}
	} else if errors.Is(err, os.ErrNotExist) {
		initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", dataDir, "-U", "postgres",
			"-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
		initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if out, err := initdb.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("initdb: %v: %s", err, lastLines(string(out), 5))
		}
	}
	maxConns := opts.MaxConnections
	if maxConns == 0 {
		maxConns = 300
	}
	var lastErr error
	for attempt := 0; attempt < 4; attempt++ {
		port, err := pickPort(opts.Port, attempt)
		if err != nil {
			return nil, err
		}
		args := []string{"-D", dataDir, "-p", strconv.Itoa(port),
			"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
			"-c", "max_connections=" + strconv.Itoa(maxConns), "-c", "shared_buffers=256MB",
			"-c", "logging_collector=off", "-c", "log_min_messages=warning"}
		if !opts.Durable {
			args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
		}
		if lastErr = p.start(ctx, args, cred, port); lastErr == nil {
			ok = true
			p.args, p.cred = args, cred
			return p, nil
		}
	}
	return nil, lastErr
}

func (p *Postgres) start(ctx context.Context, args []string, cred *syscall.Credential, port int) error {
	logFile, err := os.OpenFile(filepath.Join(p.Dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(p.BinDir, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Pdeathsig: the server dies with the test binary or dev process that started it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	p.cmd, p.exited, p.Port = cmd, exited, port
	p.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(p.Dir, "postgres.log"))
			return fmt.Errorf("postgres exited during start: %s", lastLines(string(log), 5))
		case <-ctx.Done():
			p.Stop()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		err := p.answers(ctx, filepath.Join(p.Dir, "data"))
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			p.Stop()
			return fmt.Errorf("postgres did not accept connections within 30s: %w", err)
		}
	}
}

// answers connects to the port and checks that the server there runs on dataDir: a port that was
// free a moment ago may have been taken by another server since (our own then exits unable to
// bind), and a test must never go on with another test's server.
func (p *Postgres) answers(ctx context.Context, dataDir string) error {
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, p.URL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var dir string
	if err := conn.QueryRow(cctx, `SELECT current_setting('data_directory')`).Scan(&dir); err != nil {
		return err
	}
	if dir != dataDir {
		return fmt.Errorf("port %d is another server's (data directory %s)", p.Port, dir)
	}
	return nil
}

// Kill sends SIGKILL to the postmaster alone, as `kill -9` of the server's pid does, and waits
// until its backends have noticed and exited (each finishes what it cannot interrupt, then
// exits), so that Restart finds the shared memory free.
func (p *Postgres) Kill() { p.kill(false) }

// KillAll sends SIGKILL to the postmaster and every one of its processes at once, as the OOM
// killer or the end of a container does: a backend that had flushed its commit but not replied
// yet leaves a committed transaction its client never heard of.
func (p *Postgres) KillAll() { p.kill(true) }

func (p *Postgres) kill(all bool) {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	// Stopped, the postmaster forks no child between the listing and the kill. Its children
	// live in process groups of their own (each calls setsid), so they are found by parent.
	pid := p.cmd.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGSTOP)
	children := childrenOf(pid)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if all {
		for _, c := range children {
			_ = syscall.Kill(c, syscall.SIGKILL)
		}
	}
	<-p.exited
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range children {
		for alive(c) {
			if time.Now().After(deadline) {
				_ = syscall.Kill(c, syscall.SIGKILL)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// childrenOf lists the processes whose parent is pid (from /proc; none where there is no /proc).
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _ := procStat(c); ppid == pid {
			out = append(out, c)
		}
	}
	return out
}

// alive reports whether pid is a process that has not exited (a zombie has).
func alive(pid int) bool {
	_, state := procStat(pid)
	return state != "" && state != "Z" && state != "X"
}

// procStat returns the parent pid and the state letter of pid from /proc/<pid>/stat.
func procStat(pid int) (ppid int, state string) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, ""
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
	rest := string(b)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest)
	if len(f) < 2 {
		return 0, ""
	}
	ppid, _ = strconv.Atoi(f[1])
	return ppid, f[0]
}

// Restart starts the server again on its data directory and port after Kill, running crash
// recovery, and returns once it accepts connections.
func (p *Postgres) Restart(ctx context.Context) error {
	if p.args == nil {
		return errors.New("restart: the server was never started")
	}
	return p.start(ctx, p.args, p.cred, p.Port)
}

// Stop shuts the server down (fast shutdown, then kill) and removes a temporary directory.
func (p *Postgres) Stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-p.exited:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
		}
	}
	if p.tempDir {
		_ = os.RemoveAll(p.Dir)
		_ = os.RemoveAll(p.origDir)
	}
}

// serverCredential is nil unless we are root, when servers run as the postgres user.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, postgres must run as the `postgres` user, which does not exist: %s", PostgresInstallHint)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func chownTree(dir string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(cred.Uid), int(cred.Gid))
	})
}

// reachableAs reports whether the user of cred can enter dir.
func reachableAs(cred *syscall.Credential, dir string) bool {
	cmd := exec.Command("/bin/sh", "-c", `cd "$1"`, "sh", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	return cmd.Run() == nil
}

// relocate moves the server directory of dir to /var/lib/spendcap/<hash of dir>, leaving a
// symlink at dir, and returns the new directory. A second call finds the link and reuses it.
func relocate(dir string) (string, error) {
	if target, err := os.Readlink(filepath.Join(dir, "server")); err == nil {
		return target, nil
	}
	sum := sha256.Sum256([]byte(dir))
	target := filepath.Join("/var/lib/spendcap", "pg-"+hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll(target, 0o755); err != nil {
		return "", err
	}
	if err := os.Chmod("/var/lib/spendcap", 0o755); err != nil {
		return "", err
	}
	if err := os.Symlink(target, filepath.Join(dir, "server")); err != nil {
		return "", err
	}
	return target, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// WithDatabase returns the Postgres connection string connString (URL or keyword form) pointing at
// database name instead.
func WithDatabase(connString, name string) string {
	if u, err := url.Parse(connString); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + name
		return u.String()
	}
	return strings.TrimSpace(connString) + " dbname=" + name
}
