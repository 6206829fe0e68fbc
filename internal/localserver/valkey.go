package localserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// ValkeyInstallHint tells how to get valkey-server.
const ValkeyInstallHint = "install valkey-server 8 (`make deps`, or add bookworm-backports to the apt sources and " +
	"`apt-get install -t bookworm-backports valkey-server`), or set SPENDCAP_VALKEY_SERVER to its path"

// Databases is how many logical databases local servers have: tests take one each.
const Databases = 10000

// ValkeyOptions configure StartValkey.
type ValkeyOptions struct {
	// Dir holds the server's files and log. Empty means a new temporary directory removed by Stop.
	Dir string
	// Durable turns on the append-only file with appendfsync always (dev data), as production
	// should run; otherwise the server keeps nothing (appendonly no), as tests need.
	Durable bool
	// AppendFsync, with Durable, is the appendfsync policy: "always" (the default) or "everysec".
	AppendFsync string
	// Port is tried first when not 0; a free port is used when it is taken. Tests must leave it
	// 0: StartValkey refuses a fixed port under test (see UnderTestEnv).
	Port int
}

// Valkey is a running local valkey-server.
type Valkey struct {
	// URL is redis://127.0.0.1:<port>/0.
	URL     string
	Addr    string
	Dir     string
	cmd     *exec.Cmd
	exited  chan struct{}
	tempDir bool
	bin     string
	args    []string
	port    int
}

// FindValkeyServer returns $SPENDCAP_VALKEY_SERVER or valkey-server from PATH.
func FindValkeyServer() (string, error) {
	if p := os.Getenv("SPENDCAP_VALKEY_SERVER"); p != "" {
		if isExecutable(p) {
			return p, nil
		}
		return "", fmt.Errorf("SPENDCAP_VALKEY_SERVER=%s is not an executable", p)
	}
	for _, p := range []string{"valkey-server", "/usr/bin/valkey-server", "/usr/local/bin/valkey-server"} {
		if found, err := exec.LookPath(p); err == nil {
			return found, nil
		}
	}
	return "", fmt.Errorf("valkey-server not found: %s", ValkeyInstallHint)
}

// StartValkey starts valkey-server on a free loopback port.
func StartValkey(ctx context.Context, opts ValkeyOptions) (*Valkey, error) {
	if err := refuseFixedPort("valkey", opts.Port); err != nil {
		return nil, err
	}
	bin, err := FindValkeyServer()
	if err != nil {
		return nil, err
	}
	v := &Valkey{Dir: opts.Dir}
	if v.Dir == "" {
		if v.Dir, err = os.MkdirTemp("", "spendcap-valkey-"); err != nil {
			return nil, err
		}
		v.tempDir = true
	} else if err := os.MkdirAll(v.Dir, 0o755); err != nil {
		return nil, err
	}
	// valkey-server changes into --dir before opening --logfile: both must be absolute.
	if v.Dir, err = filepath.Abs(v.Dir); err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 4; attempt++ {
		port, err := pickPort(opts.Port, attempt)
		if err != nil {
			return nil, err
		}
		args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", v.Dir,
			"--logfile", filepath.Join(v.Dir, "valkey.log"), "--daemonize", "no", "--save", "",
			"--maxmemory-policy", "noeviction", "--databases", strconv.Itoa(Databases)}
		if opts.Durable {
			fsync := opts.AppendFsync
			if fsync == "" {
				fsync = "always"
			}
			args = append(args, "--appendonly", "yes", "--appendfsync", fsync)
		} else {
			args = append(args, "--appendonly", "no")
		}
		if lastErr = v.start(ctx, bin, args, port); lastErr == nil {
			v.bin, v.args, v.port = bin, args, port
			return v, nil
		}
	}
	if v.tempDir {
		_ = os.RemoveAll(v.Dir)
	}
	return nil, lastErr
}

func (v *Valkey) start(ctx context.Context, bin string, args []string, port int) error {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start valkey-server: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	v.cmd, v.exited = cmd, exited
	v.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	v.URL = "redis://" + v.Addr + "/0"
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(v.Dir, "valkey.log"))
			return fmt.Errorf("valkey-server exited during start: %s", lastLines(string(log), 5))
		case <-ctx.Done():
			v.Stop()
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		err := Ping(ctx, v.Addr)
		if err == nil {
			err = v.ours(ctx, cmd.Process.Pid)
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			v.Stop()
			return fmt.Errorf("valkey-server did not answer PING within 20s: %w", err)
		}
	}
}

// Ping sends PING in RESP and expects PONG.
func Ping(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return errors.New("unexpected reply to PING: " + strings.TrimSpace(line))
	}
	return nil
}

// ours checks that the server answering on v.Addr is the process we started: a port that was free
// a moment ago may be another server's by now (ours then exits unable to bind).
func (v *Valkey) ours(ctx context.Context, pid int) error {
	rdb := redis.NewClient(&redis.Options{Addr: v.Addr, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second})
	defer rdb.Close()
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return err
	}
	for _, line := range strings.Split(info, "\n") {
		if f, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			if f == strconv.Itoa(pid) {
				return nil
			}
			return fmt.Errorf("%s is another server's (process %s)", v.Addr, f)
		}
	}
	return fmt.Errorf("%s: INFO server has no process_id", v.Addr)
}

// Kill sends SIGKILL to the server, as `kill -9` does, and waits until it is gone.
func (v *Valkey) Kill() {
	if v.cmd == nil || v.cmd.Process == nil {
		return
	}
	_ = v.cmd.Process.Signal(syscall.SIGKILL)
	<-v.exited
}

// ReplicaOf makes the server a replica of primary, with a full sync at once (Valkey otherwise
// waits 5 s for more replicas), and returns once it is in sync.
func (v *Valkey) ReplicaOf(ctx context.Context, primary *Valkey) error {
	p := redis.NewClient(&redis.Options{Addr: primary.Addr})
	defer p.Close()
	if err := p.ConfigSet(ctx, "repl-diskless-sync-delay", "0").Err(); err != nil {
		return err
	}
	r := redis.NewClient(&redis.Options{Addr: v.Addr})
	defer r.Close()
	host, port, _ := strings.Cut(primary.Addr, ":")
	if err := r.Do(ctx, "REPLICAOF", host, port).Err(); err != nil {
		return err
	}
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(r.Info(ctx, "replication").Val(), "master_link_status:up"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not sync with its primary %s in 20 s", v.Addr, primary.Addr)
		}
	}
	return nil
}

// Signal sends sig to the server: SIGSTOP and SIGCONT freeze and resume it, as a replica that lags
// or a stalled machine would be.
func (v *Valkey) Signal(sig syscall.Signal) error {
	if v.cmd == nil || v.cmd.Process == nil {
		return errors.New("signal: the server is not running")
	}
	return v.cmd.Process.Signal(sig)
}

// Restart starts the server again on its directory and port after Kill, loading what its
// append-only file kept, and returns once it answers PING.
func (v *Valkey) Restart(ctx context.Context) error {
	if v.args == nil {
		return errors.New("restart: the server was never started")
	}
	return v.start(ctx, v.bin, v.args, v.port)
}

// Stop shuts the server down and removes a temporary directory.
func (v *Valkey) Stop() {
	if v.cmd != nil && v.cmd.Process != nil {
		_ = v.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-v.exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL)
			<-v.exited
		}
	}
	if v.tempDir {
		_ = os.RemoveAll(v.Dir)
	}
}
