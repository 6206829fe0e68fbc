package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spendcap/spendcap/internal/localserver"
	"github.com/spendcap/spendcap/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var (
	buildOnce sync.Once
	binPath   string
	buildOut  []byte
	buildErr  error
)

func devBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "spendcap-dev-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "dev")
		buildOut, buildErr = exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build: %v: %s", buildErr, buildOut)
	}
	return binPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestDevModeBringsUpPostgresValkeyAndTheWorker(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	t.Cleanup(func() {
		if target, err := os.Readlink(filepath.Join(dir, "postgres", "server")); err == nil {
			_ = os.RemoveAll(target)
		}
	})
	metricsAddr := freeAddr(t)
	cmd := exec.Command(devBinary(t), "--dev-dir", dir, "--metrics-addr", metricsAddr)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	lines := bufio.NewScanner(stdout)
	var dbURL, valkeyURL, hint string
	for lines.Scan() {
		l := lines.Text()
		switch {
		case strings.HasPrefix(l, "DATABASE_URL="):
			dbURL = strings.TrimPrefix(l, "DATABASE_URL=")
		case strings.HasPrefix(l, "VALKEY_URL="):
			valkeyURL = strings.TrimPrefix(l, "VALKEY_URL=")
		case strings.HasPrefix(l, "try: psql"):
			hint = l
		}
		if hint != "" {
			break
		}
	}
	if dbURL == "" || valkeyURL == "" || hint == "" {
		t.Fatalf("stdout lacks the connection strings and the psql hint; stderr:\n%s", stderr.String())
	}
	psql := "psql"
	if bin, err := localserver.FindPostgresBin(); err == nil {
		if _, err := os.Stat(filepath.Join(bin, "psql")); err == nil {
			psql = filepath.Join(bin, "psql")
		}
	}
	out, err := exec.Command(psql, "-X", "-At", "-v", "ON_ERROR_STOP=1", dbURL,
		"-c", `select created from spendcap.create_budget('demo', '{"tokens": 1000}', reset_every => '1 day')`,
		"-c", `select outcome from spendcap.report_usage('demo', '{"tokens": 120}')`).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "t\nok" {
		t.Errorf("psql with the printed URL: %v\n%s", err, out)
	}
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(stderr.String(), "jobs worker running"); {
		if time.Now().After(deadline) {
			t.Fatalf("the worker did not start:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, body := get("http://" + metricsAddr + "/healthz"); code != http.StatusOK {
		t.Errorf("the worker's /healthz on --metrics-addr: %d %s", code, body)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM: %v\n%s", err, stderr.String())
	}
}
