package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestWorkerServesMetricsAndStopsCleanlyOnSIGTERMWhileJobsRun(t *testing.T) {
	t.Parallel()
	url := testenv.NewDatabase(t)
	c := gobinding.NewClient(testenv.PoolFor(t, url))
	past := time.Now().Add(-10*24*time.Hour - 12*time.Hour)
	for i := 0; i < 1500; i++ {
		id := fmt.Sprintf("b%d", i)
		if _, err := c.CreateBudget(context.Background(), spendcap.CreateBudgetParams{BudgetID: id, ResetEvery: "1 day", ResetAnchor: &past, At: past}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ReportUsage(context.Background(), spendcap.ReportUsageParams{BudgetID: id, Deltas: map[string]int64{"t": 1}, At: past}); err != nil {
			t.Fatal(err)
		}
	}
	addr := testenv.FreeAddr(t)
	cmd := exec.Command(testenv.Binary(t, "."), "--database-url", url, "--metrics-addr", addr, "--roll-interval", "1s", "--roll-batch", "1")
	var stderr testenv.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	deadline := time.Now().Add(30 * time.Second)
	// Wait until the roll job is half-way: some windows rolled, some still due.
	for {
		code, body := testenv.HTTPGet("http://" + addr + "/metrics")
		if code == 200 && !strings.Contains(body, "spendcap_windows_rolled_total 0") && strings.Contains(body, "spendcap_windows_rolled_total") {
			if hc, hb := testenv.HTTPGet("http://" + addr + "/healthz"); hc != 200 || strings.TrimSpace(hb) != "ok" {
				t.Errorf("/healthz = %d %q", hc, hb)
			}
			for _, m := range []string{"spendcap_due_windows", "spendcap_purged_rows_total", "spendcap_job_failures_total"} {
				if !strings.Contains(body, m) {
					t.Errorf("/metrics lacks %s", m)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no roll observed in /metrics; stderr:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil || cmd.ProcessState.ExitCode() != 0 {
			t.Errorf("after SIGTERM: %v (exit %d)\n%s", err, cmd.ProcessState.ExitCode(), stderr.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatalf("the worker did not exit after SIGTERM:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "msg=stopped") {
		t.Errorf("no clean stop logged:\n%s", stderr.String())
	}
}

// The production worker links no code that starts servers: that is the dev launcher's.
func TestTheProductionBinaryLinksNoDevLauncher(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasSuffix(pkg, "/internal/devenv") || strings.HasSuffix(pkg, "/internal/localserver") || strings.HasSuffix(pkg, "/internal/testenv") {
			t.Errorf("cmd/jobs links %s", pkg)
		}
	}
}
