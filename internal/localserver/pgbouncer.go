package localserver

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// PgBouncerInstallHint tells how to get pgbouncer.
const PgBouncerInstallHint = "install pgbouncer (`make deps`, or `apt-get install pgbouncer`), or set SPENDCAP_PGBOUNCER to its path"

// PgBouncerOptions configure StartPgBouncer.
type PgBouncerOptions struct {
	// Upstream is a Postgres URL whose host, port, user and password the pooler logs in with; every
	// database name is passed through.
	Upstream string
	// PoolSize is the number of server connections per database and user (default 2). It is also
	// kept open (min_pool_size), and server connections are handed out round robin, so that
	// consecutive transactions of one client land on different server connections: what a busy
	// production pooler does, and what breaks session state such as named prepared statements.
	PoolSize int
}

// PgBouncer is a running pgbouncer in transaction pooling mode on a loopback port.
type PgBouncer struct {
	Host string
	Port int
	Dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// FindPgBouncer returns the pgbouncer binary: $SPENDCAP_PGBOUNCER, else pgbouncer on PATH, else
// /usr/sbin/pgbouncer (Debian's package, not on a non-root PATH).
func FindPgBouncer() (string, error) {
	if p := os.Getenv("SPENDCAP_PGBOUNCER"); p != "" {
		if isExecutable(p) {
			return p, nil
		}
		return "", fmt.Errorf("SPENDCAP_PGBOUNCER=%s is not an executable", p)
	}
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	if isExecutable("/usr/sbin/pgbouncer") {
		return "/usr/sbin/pgbouncer", nil
	}
	return "", fmt.Errorf("no pgbouncer: %s", PgBouncerInstallHint)
}

// StartPgBouncer starts pgbouncer in transaction pooling mode in front of opts.Upstream. It runs
// as the postgres user when we are root (pgbouncer refuses root).
func StartPgBouncer(ctx context.Context, opts PgBouncerOptions) (*PgBouncer, error) {
	bin, err := FindPgBouncer()
	if err != nil {
		return nil, err
	}
	up, err := url.Parse(opts.Upstream)
	if err != nil || (up.Scheme != "postgres" && up.Scheme != "postgresql") {
		return nil, fmt.Errorf("pgbouncer upstream must be a postgres:// URL, got %q", opts.Upstream)
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	poolSize := opts.PoolSize
	if poolSize == 0 {
		poolSize = 2
	}
	dir, err := os.MkdirTemp("", "spendcap-pgbouncer-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	upstream := fmt.Sprintf("host=%s port=%s user=%s", up.Hostname(), portOr(up.Port(), "5432"), up.User.Username())
	if pw, ok := up.User.Password(); ok {
		upstream += " password=" + pw
	}
	ini := fmt.Sprintf(`[databases]
* = %s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = any
auth_file = %s
pool_mode = transaction
default_pool_size = %d
min_pool_size = %d
server_round_robin = 1
max_client_conn = 500
ignore_startup_parameters = extra_float_digits
logfile = %s
`, upstream, port, filepath.Join(dir, "users.txt"), poolSize, poolSize, filepath.Join(dir, "pgbouncer.log"))
	if err := os.WriteFile(filepath.Join(dir, "users.txt"), nil, 0o644); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "pgbouncer.ini")
	if err := os.WriteFile(conf, []byte(ini), 0o644); err != nil {
		return nil, err
	}
	if err := chownTree(dir, cred); err != nil {
		return nil, err
	}
	b := &PgBouncer{Host: "127.0.0.1", Port: port, Dir: dir, done: make(chan struct{})}
	b.cmd = exec.Command(bin, conf)
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start pgbouncer: %w", err)
	}
	go func() { _ = b.cmd.Wait(); close(b.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(b.Host, strconv.Itoa(port)), time.Second)
		if err == nil {
			_ = c.Close()
			return b, nil
		}
		select {
		case <-b.done:
			log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("pgbouncer exited during start: %s", lastLines(string(log), 5))
		case <-ctx.Done():
			b.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Stop()
			return nil, fmt.Errorf("pgbouncer did not listen within 15s: %w", err)
		}
	}
}

// URL returns upstream (a postgres:// URL of the upstream server) pointed at the pooler instead.
func (b *PgBouncer) URL(upstream string) string {
	u, err := url.Parse(upstream)
	if err != nil {
		return upstream
	}
	u.Host = net.JoinHostPort(b.Host, strconv.Itoa(b.Port))
	return u.String()
}

// Stop ends pgbouncer and removes its directory.
func (b *PgBouncer) Stop() {
	if b.cmd != nil && b.cmd.Process != nil {
		_ = b.cmd.Process.Signal(syscall.SIGTERM) // immediate shutdown; SIGINT waits for clients
		select {
		case <-b.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
			<-b.done
		}
	}
	_ = os.RemoveAll(b.Dir)
}

func portOr(p, def string) string {
	if p == "" {
		return def
	}
	return p
}
