package main

import (
	"bufio"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spendcap/spendcap/internal/localserver"
	"github.com/spendcap/spendcap/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestDevModeBringsUpPostgresValkeyAndTheWorker(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	t.Cleanup(func() {
		if target, err := os.Readlink(filepath.Join(dir, "postgres", "server")); err == nil {
			_ = os.RemoveAll(target)
		}
	})
	metricsAddr := testenv.FreeAddr(t)
	cmd := exec.Command(testenv.Binary(t, "."), "--dev-dir", dir, "--metrics-addr", metricsAddr)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testenv.SyncBuffer
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
	if code, body := testenv.HTTPGet("http://" + metricsAddr + "/healthz"); code != http.StatusOK {
		t.Errorf("the worker's /healthz on --metrics-addr: %d %s", code, body)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM: %v\n%s", err, stderr.String())
	}
}
