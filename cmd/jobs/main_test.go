package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/localserver"
	"github.com/spendcap/spendcap/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestWorkerServesMetricsAndStopsCleanlyOnSIGTERMWhileJobsRun(t *testing.T) {
	t.Parallel()
	url := testenv.NewDatabase(t)
	c := gobinding.NewClient(testenv.PoolFor(t, url), gobinding.Options{})
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

// hangingReceiver is a webhook endpoint that holds every request open while hang is set (a
// receiver slower than the worker's life) and otherwise acknowledges it, counting acknowledged
// posts by Spendcap-Event.
type hangingReceiver struct {
	*httptest.Server
	mu      sync.Mutex
	hang    bool
	inbound int
	acked   map[string]int
}

func newHangingReceiver(t *testing.T) *hangingReceiver {
	r := &hangingReceiver{hang: true, acked: map[string]int{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if !spendcap.VerifyWebhook(webhookSecret, body, req.Header.Get(spendcap.SignatureHeader)) {
			t.Errorf("bad signature on %s", body)
		}
		r.mu.Lock()
		r.inbound++
		hang := r.hang
		r.mu.Unlock()
		if hang {
			<-req.Context().Done()
			return
		}
		r.mu.Lock()
		r.acked[req.Header.Get("Spendcap-Event")]++
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	return r
}

// waitInbound waits until n deliveries have reached the receiver (and hang there).
func (r *hangingReceiver) waitInbound(t *testing.T, n int, stderr *testenv.SyncBuffer) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if in, _ := r.counts(); in >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delivery started; stderr:\n%s", stderr.String())
		}
	}
}

// release makes the receiver answer every delivery from now on.
func (r *hangingReceiver) release() {
	r.mu.Lock()
	r.hang = false
	r.mu.Unlock()
}

func (r *hangingReceiver) counts() (inbound, distinct int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inbound, len(r.acked)
}

const webhookSecret = "kill-test-secret-0123456789"

// eventsFor registers r and raises n threshold events, one per budget.
func eventsFor(t *testing.T, url string, r *hangingReceiver, n int) {
	t.Helper()
	c := gobinding.NewClient(testenv.PoolFor(t, url), gobinding.Options{})
	if _, err := c.CreateWebhook(context.Background(), gobinding.CreateWebhookParams{URL: r.URL, Secret: webhookSecret}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		id := fmt.Sprintf("k%d", i)
		if _, err := c.CreateBudget(context.Background(), spendcap.CreateBudgetParams{BudgetID: id,
			HardLimits: map[string]int64{"usd": 10}, AlertPercents: []int32{50}}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ReportUsage(context.Background(), spendcap.ReportUsageParams{BudgetID: id, Deltas: map[string]int64{"usd": 5}}); err != nil {
			t.Fatal(err)
		}
	}
}

func startJobs(t *testing.T, args ...string) (*exec.Cmd, *testenv.SyncBuffer) {
	t.Helper()
	return startJobsEnv(t, nil, args...)
}

// startJobsEnv is startJobs with env added to the test's environment.
func startJobsEnv(t *testing.T, env []string, args ...string) (*exec.Cmd, *testenv.SyncBuffer) {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t, "."), append([]string{"--metrics-addr", ""}, args...)...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stderr testenv.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, &stderr
}

// deliveredAll waits until every one of n events was acknowledged at least once.
func deliveredAll(t *testing.T, r *hangingReceiver, n int, timeout time.Duration, stderr *testenv.SyncBuffer) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if _, d := r.counts(); d == n {
			return
		}
		if time.Now().After(deadline) {
			_, d := r.counts()
			t.Fatalf("%d of %d events delivered within %v; worker stderr:\n%s", d, n, timeout, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestAWorkerKilledMidDeliveryLosesNoEvent(t *testing.T) {
	t.Parallel()
	url := testenv.NewDatabase(t)
	r := newHangingReceiver(t)
	const n = 15
	eventsFor(t, url, r, n)
	flags := []string{"--database-url", url, "--delivery-workers", "4", "--delivery-timeout", "1s", "--rescue-after", "9s"}
	first, stderr := startJobs(t, flags...)
	r.waitInbound(t, 4, stderr)
	// Four deliveries are running, the rest wait in the queue: kill -9.
	_ = first.Process.Kill()
	_ = first.Wait()
	r.release()
	// The second worker takes the waiting deliveries at once, and the killed worker's running ones
	// when it is leader and they are older than --rescue-after.
	_, stderr = startJobs(t, flags...)
	deliveredAll(t, r, n, 90*time.Second, stderr)
}

func TestAWorkerStoppedMidDeliveryRetriesItAfterARestart(t *testing.T) {
	t.Parallel()
	url := testenv.NewDatabase(t)
	r := newHangingReceiver(t)
	const n = 6
	eventsFor(t, url, r, n)
	flags := []string{"--database-url", url, "--delivery-workers", "2", "--delivery-timeout", "5s", "--shutdown-timeout", "500ms"}
	first, stderr := startJobs(t, flags...)
	r.waitInbound(t, 2, stderr)
	_ = first.Process.Signal(syscall.SIGTERM)
	if err := first.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v\n%s", err, stderr.String())
	}
	r.release()
	_, stderr = startJobs(t, flags...)
	deliveredAll(t, r, n, 30*time.Second, stderr)
}

// A Valkey that is down when the worker starts is waited for like the database: /healthz answers
// 503 meanwhile, and the worker runs once Valkey answers.
func TestWorkerStartedWhileValkeyIsDownRunsOnceItIsUp(t *testing.T) {
	t.Parallel()
	vk, err := localserver.StartValkey(context.Background(), localserver.ValkeyOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vk.Stop)
	vk.Kill()
	addr := testenv.FreeAddr(t)
	cmd := exec.Command(testenv.Binary(t, "."), "--database-url", testenv.NewDatabase(t), "--valkey-url", vk.URL, "--metrics-addr", addr)
	var stderr testenv.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	testenv.UnhealthyFor(t, addr, time.Second, &stderr, exited)
	if err := vk.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	testenv.WaitForOutput(t, &stderr, "jobs worker running", 30*time.Second, exited)
	if code, body := testenv.HTTPGet("http://" + addr + "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz once running: %d %s", code, body)
	}
}
