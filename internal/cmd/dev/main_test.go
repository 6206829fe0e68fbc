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
	cmd := exec.Command(testenv.Binary(t, "."), "--dev-dir", dir, "--postgres-port", "0", "--valkey-port", "0",
		"--metrics-addr", metricsAddr, "--console-port", "0")
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
	var dbURL, valkeyURL, consoleURL, hint string
	for lines.Scan() {
		l := lines.Text()
		switch {
		case strings.HasPrefix(l, "DATABASE_URL="):
			dbURL = strings.TrimPrefix(l, "DATABASE_URL=")
		case strings.HasPrefix(l, "VALKEY_URL="):
			valkeyURL = strings.TrimPrefix(l, "VALKEY_URL=")
		case strings.HasPrefix(l, "CONSOLE_URL="):
			consoleURL = strings.TrimPrefix(l, "CONSOLE_URL=")
		case strings.HasPrefix(l, "try: psql"):
			hint = l
		}
		if hint != "" {
			break
		}
	}
	if dbURL == "" || valkeyURL == "" || consoleURL == "" || hint == "" {
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
	testenv.WaitForOutput(t, &stderr, "jobs worker running", 30*time.Second, nil)
	if code, body := testenv.HTTPGet("http://" + metricsAddr + "/healthz"); code != http.StatusOK {
		t.Errorf("the worker's /healthz on --metrics-addr: %d %s", code, body)
	}
	// The dev worker exports the budgets nearest a limit: demo used 12% of its tokens.
	if code, body := testenv.HTTPGet("http://" + metricsAddr + "/metrics"); code != http.StatusOK ||
		!strings.Contains(body, `spendcap_budget_usage{backend="postgres",budget_id="demo",dimension="tokens"} 120`) {
		t.Errorf("the dev worker's /metrics lacks demo's budget gauge: %d\n%s", code, grep(body, "spendcap_budget"))
	}
	// The console, on loopback, lists demo at 12%.
	if !strings.HasPrefix(consoleURL, "http://127.0.0.1:") {
		t.Errorf("CONSOLE_URL=%s, want one on loopback", consoleURL)
	}
	if code, body := testenv.HTTPGet(consoleURL + "budgets"); code != http.StatusOK || !strings.Contains(body, `data-permille="120"`) {
		t.Errorf("the dev console's budgets page: %d\n%s", code, body)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM: %v\n%s", err, stderr.String())
	}
}

func TestDevHelpPrintsUsageAndStartsNothing(t *testing.T) {
	t.Parallel()
	for _, flag := range []string{"-h", "--help"} {
		dir := t.TempDir()
		out, err := exec.Command(testenv.Binary(t, "."), "--dev-dir", dir, flag).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "usage: dev") || !strings.Contains(string(out), "bin/jobs -h") {
			t.Errorf("dev %s: %v\n%s", flag, err, out)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("dev %s wrote into --dev-dir: %v", flag, entries)
		}
	}
}

func TestDevRefusesABadPort(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(testenv.Binary(t, "."), "--dev-dir", t.TempDir(), "--postgres-port", "x").CombinedOutput()
	if code := exitCode(err); code != 2 || !strings.Contains(string(out), "--postgres-port must be a port number") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

func exitCode(err error) int {
	if e, ok := err.(*exec.ExitError); ok {
		return e.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// grep returns the lines of s that contain sub.
func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
