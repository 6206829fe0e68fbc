package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap/internal/localserver"
	"github.com/spendcap/spendcap/internal/migrator"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type result struct {
	code           int
	stdout, stderr string
}

func runCLI(args ...string) result {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return result{code, out.String(), errb.String()}
}

// oneLine asserts that stderr holds exactly one line (no stack trace) containing want.
func oneLine(t *testing.T, r result, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "migrate: ") || !strings.Contains(last, want) {
		t.Errorf("stderr = %q, want a last line `migrate: ...%s...`", r.stderr, want)
	}
	if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") {
		t.Errorf("stderr has a stack trace: %s", r.stderr)
	}
}

func TestUnknownCommandExitsWithUsageCode(t *testing.T) {
	t.Parallel()
	r := runCLI("bogus")
	if r.code != exitUsage {
		t.Errorf("exit = %d, want %d", r.code, exitUsage)
	}
	oneLine(t, r, `unknown command "bogus"`)
}

func TestMissingCommandExitsWithUsageCode(t *testing.T) {
	t.Parallel()
	if r := runCLI(); r.code != exitUsage {
		t.Errorf("exit = %d, want %d", r.code, exitUsage)
	}
	if r := runCLI("down"); r.code != exitUsage {
		t.Errorf("down without N: exit = %d, want %d", r.code, exitUsage)
	}
	if r := runCLI("down", "zero"); r.code != exitUsage {
		t.Errorf("down zero: exit = %d, want %d", r.code, exitUsage)
	}
}

func TestUnreachableDatabaseFailsWithOneLine(t *testing.T) {
	t.Parallel()
	r := runCLI("--database-url", "postgres://nobody@127.0.0.1:1/none?connect_timeout=2", "up")
	if r.code != exitFailure {
		t.Errorf("exit = %d, want %d", r.code, exitFailure)
	}
	oneLine(t, r, "connect")
}

func TestBadURLFailsWithOneLine(t *testing.T) {
	t.Parallel()
	r := runCLI("--database-url", "postgres://u:secret@[bad", "status")
	if r.code != exitFailure {
		t.Errorf("exit = %d, want %d", r.code, exitFailure)
	}
	oneLine(t, r, "database url")
	if strings.Contains(r.stderr, "secret") {
		t.Errorf("stderr shows the password: %s", r.stderr)
	}
}

func TestUpPrintsJSONResultOnStdoutAndLogsOnStderr(t *testing.T) {
	t.Parallel()
	url := testenv.NewEmptyDatabase(t)
	r := runCLI("up", "--database-url", url, "--format=json")
	if r.code != exitOK {
		t.Fatalf("exit = %d: %s", r.code, r.stderr)
	}
	var res migrator.UpResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("stdout is not one JSON result: %v\n%s", err, r.stdout)
	}
	if len(res.Schema.Applied) == 0 || len(res.Functions.Applied) == 0 || len(res.River.Applied) == 0 {
		t.Errorf("result = %+v, want schema, functions and river applied", res)
	}
	if !strings.Contains(r.stderr, "level=INFO") {
		t.Errorf("stderr has no logs: %q", r.stderr)
	}
	r = runCLI("status", "--database-url", url, "--format=json")
	var st migrator.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != exitOK {
		t.Fatalf("status: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	if st.Pending || len(st.Functions) == 0 || st.Functions[0].State != "applied" {
		t.Errorf("status after up = %+v, want nothing pending", st)
	}
}

func TestDirtySchemaExitsWithDirtyCode(t *testing.T) {
	t.Parallel()
	url := testenv.NewEmptyDatabase(t)
	if r := runCLI("up", "--database-url", url); r.code != exitOK {
		t.Fatalf("up: %s", r.stderr)
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `UPDATE public.spendcap_schema_migrations SET dirty = true`); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"up", "version", "status"} {
		r := runCLI(cmd, "--database-url", url)
		if r.code != exitDirty {
			t.Errorf("%s on a dirty schema: exit = %d, want %d (stderr %q)", cmd, r.code, exitDirty, r.stderr)
		}
	}
	migs, err := migrator.Migrations(nil)
	if err != nil {
		t.Fatal(err)
	}
	latest := migs[len(migs)-1].Version
	oneLine(t, runCLI("up", "--database-url", url), fmt.Sprintf("migrate force %d", latest-1))
	if r := runCLI("force", strconv.Itoa(int(latest)), "--database-url", url); r.code != exitOK {
		t.Fatalf("force: exit %d %s", r.code, r.stderr)
	}
	if r := runCLI("up", "--database-url", url); r.code != exitOK {
		t.Errorf("up after force: exit %d %s", r.code, r.stderr)
	}
}

func holdDeployLock(t *testing.T, url string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	if _, err := conn.Exec(context.Background(), `SELECT pg_advisory_lock($1)`, migrator.LockKey); err != nil {
		t.Fatal(err)
	}
}

func TestLockTimeoutExitsWithLockCode(t *testing.T) {
	t.Parallel()
	url := testenv.NewEmptyDatabase(t)
	holdDeployLock(t, url)
	r := runCLI("up", "--database-url", url, "--lock-timeout=300ms")
	if r.code != exitLockTimeout {
		t.Errorf("exit = %d, want %d (stderr %q)", r.code, exitLockTimeout, r.stderr)
	}
	oneLine(t, r, "deploy lock")
}

func TestSIGTERMWhileWaitingStopsCleanlyWithoutApplying(t *testing.T) {
	t.Parallel()
	url := testenv.NewEmptyDatabase(t)
	holdDeployLock(t, url)
	cmd := exec.Command(testenv.Binary(t, "."), "up")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+url)
	var stderr testenv.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stderr.String(), "waiting for the deploy lock") {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("migrate never waited for the lock: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitFailure || !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("after SIGTERM: exit %d (%v), stderr %q; want exit 1 and `interrupted`", code, err, stderr.String())
	}
	if strings.Contains(stderr.String(), "goroutine ") {
		t.Errorf("stack trace on SIGTERM: %s", stderr.String())
	}
	var tables int
	conn, _ := pgx.Connect(context.Background(), url)
	defer conn.Close(context.Background())
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_tables WHERE schemaname = 'spendcap'`).Scan(&tables); err != nil || tables != 0 {
		t.Errorf("interrupted migrate created %d tables (err %v)", tables, err)
	}
}

func TestDatabaseURLFlagOverridesEnvironment(t *testing.T) {
	t.Parallel()
	url := testenv.NewEmptyDatabase(t)
	bin := testenv.Binary(t, ".")
	cmd := exec.Command(bin, "version")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+url)
	if out, err := cmd.Output(); err != nil || strings.TrimSpace(string(out)) != "0" {
		t.Errorf("version via DATABASE_URL = %q, %v; want 0", out, err)
	}
	cmd = exec.Command(bin, "version", "--database-url", url)
	cmd.Env = append(os.Environ(), "DATABASE_URL=postgres://nobody@127.0.0.1:1/none")
	if out, err := cmd.Output(); err != nil || strings.TrimSpace(string(out)) != "0" {
		t.Errorf("version with --database-url over a bad DATABASE_URL = %q, %v; want 0", out, err)
	}
}

func TestSQLPrintsInstallScript(t *testing.T) {
	t.Parallel()
	r := runCLI("sql")
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "-- spendcap install script") || !strings.Contains(r.stdout, "COMMIT;") {
		t.Errorf("migrate sql: exit %d, stdout starts %.80q", r.code, r.stdout)
	}
}

func TestValkeyLoadLoadsTheLibraryOnce(t *testing.T) {
	t.Parallel()
	v, err := localserver.StartValkey(context.Background(), localserver.ValkeyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Stop)
	r := runCLI("valkey-load", "--valkey-url", v.URL, "--format=json")
	first := r
	var res struct {
		Library string `json:"library"`
		Loaded  int    `json:"loaded"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); r.code != exitOK || err != nil || res.Loaded != 1 || res.Library != "spendcap" {
		t.Fatalf("first valkey-load: exit %d, %s %s", r.code, r.stdout, r.stderr)
	}
	r = runCLI("valkey-load", "--valkey-url", v.URL)
	if r.code != exitOK || !strings.Contains(r.stdout, "loaded on 0 primaries") {
		t.Errorf("second valkey-load: exit %d, %s", r.code, r.stdout)
	}
	rdb := redis.NewClient(&redis.Options{Addr: v.Addr})
	defer rdb.Close()
	if err := rdb.FCall(context.Background(), "sc_create_budget", []string{"sc:{b1}"}, `{"budget_id":"b1"}`).Err(); err != nil {
		t.Errorf("FCALL after valkey-load: %v", err)
	}
	version, old := testenv.ValkeyVersion(t, rdb)
	if warned := strings.Contains(first.stderr, "valkey-server "+version+" is older than"); warned != old {
		t.Errorf("valkey-load on valkey-server %s: older than the minimum = %v, but warned = %v; stderr:\n%s", version, old, warned, first.stderr)
	}
}

// valkey-load loads the library whatever the server's settings, but says when clients will refuse
// the server (no append-only file here), and writes the replay setting it was given.
func TestValkeyLoadWarnsOnAServerWithoutAnAppendOnlyFileAndSetsReplays(t *testing.T) {
	t.Parallel()
	v, err := localserver.StartValkey(context.Background(), localserver.ValkeyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Stop)
	rdb := redis.NewClient(&redis.Options{Addr: v.Addr})
	defer rdb.Close()
	future := fmt.Sprintf(`{"budget_id":"b1","at_ms":%d}`, time.Now().Add(time.Hour).UnixMilli())
	for _, replay := range []bool{false, true} {
		args := []string{"valkey-load", "--valkey-url", v.URL, "--format=json"}
		if replay {
			args = append(args, "--allow-replay")
		}
		r := runCLI(args...)
		var res struct {
			AllowReplay bool `json:"allow_replay"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &res); r.code != exitOK || err != nil || res.AllowReplay != replay {
			t.Fatalf("valkey-load %v: exit %d, %s %s", args, r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stderr, "clients will refuse this server") || !strings.Contains(r.stderr, "appendonly") {
			t.Errorf("valkey-load on appendonly no: stderr does not say clients will refuse it:\n%s", r.stderr)
		}
		err := rdb.FCall(context.Background(), "sc_budget_status", []string{"sc:{b1}"}, future).Err()
		if refused := err != nil && strings.HasPrefix(err.Error(), "SC002 at_ms"); refused == replay {
			t.Errorf("after valkey-load %v: a future at_ms gave %v", args, err)
		}
	}
}

func TestValkeyLoadWithoutURLIsAUsageError(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(testenv.Binary(t, "."), "valkey-load")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != exitUsage || !strings.Contains(string(out), "--valkey-url") {
		t.Errorf("valkey-load without a URL: exit %d, %s", cmd.ProcessState.ExitCode(), out)
	}
}

func TestStatusWithExitCodeFailsWhilePendingAndPassesAfterUp(t *testing.T) {
	t.Parallel()
	url := testenv.NewEmptyDatabase(t)
	if r := runCLI("status", "--database-url", url); r.code != exitOK {
		t.Errorf("status without --exit-code on a new database: exit = %d, want %d (stderr %q)", r.code, exitOK, r.stderr)
	}
	if r := runCLI("status", "--exit-code", "--database-url", url); r.code != exitPending {
		t.Errorf("status --exit-code on a new database: exit = %d, want %d (stderr %q)", r.code, exitPending, r.stderr)
	}
	if r := runCLI("up", "--database-url", url); r.code != exitOK {
		t.Fatalf("up: %s", r.stderr)
	}
	if r := runCLI("status", "--exit-code", "--database-url", url); r.code != exitOK {
		t.Errorf("status --exit-code after up: exit = %d, want %d\n%s", r.code, exitOK, r.stdout)
	}
	if r := runCLI("up", "--exit-code", "--database-url", url); r.code != exitUsage {
		t.Errorf("up --exit-code: exit = %d, want %d (the flag is for status)", r.code, exitUsage)
	}
}

// migrate audit prints "clean" and exits 0 on a clean database; on a corrupted one it prints
// the findings (JSON with --format=json) and exits 6, repairs them with --repair (still exit 6,
// since it found them), and the next audit is clean.
func TestAuditExitsWithFindingsCodeAndRepairs(t *testing.T) {
	t.Parallel()
	url := testenv.NewDatabase(t)
	if r := runCLI("audit", "--database-url", url); r.code != exitOK || r.stdout != "clean\n" {
		t.Fatalf("clean database: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if _, err := testenv.PoolFor(t, url).Exec(context.Background(), `SELECT spendcap.create_budget('b', '{"t": 100}');
		UPDATE spendcap.budgets SET reserved = '{"t": 5}'`); err != nil {
		t.Fatal(err)
	}
	r := runCLI("audit", "--database-url", url, "--format=json")
	var fs []finding
	if err := json.Unmarshal([]byte(r.stdout), &fs); err != nil || r.code != exitFindings {
		t.Fatalf("exit %d, %v: %s %s", r.code, err, r.stdout, r.stderr)
	}
	if len(fs) != 1 || fs[0].Check != "reserved" || *fs[0].BudgetID != "b" || *fs[0].Expected != "{}" || *fs[0].Found != `{"t": 5}` || fs[0].Repaired {
		t.Errorf("findings %+v", fs)
	}
	r = runCLI("audit", "--repair", "--database-url", url)
	if r.code != exitFindings || r.stdout != "postgres budget b: reserved: expected {}, found {\"t\": 5} (repaired)\n" {
		t.Errorf("repair: exit %d, stdout %q", r.code, r.stdout)
	}
	if r := runCLI("audit", "--database-url", url); r.code != exitOK {
		t.Errorf("after the repair: exit %d, %s", r.code, r.stdout)
	}
	// With --valkey-url, the keys of a Valkey budget that is gone are named too.
	rdb := testenv.Valkey(t)
	if _, err := valkey.NewClient(context.Background(), rdb, valkey.Options{AllowVolatile: true}); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(context.Background(), "sc:{acme}:l/gone", "x1", `{"t":1}`).Err(); err != nil {
		t.Fatal(err)
	}
	vkURL := fmt.Sprintf("redis://%s/%d", rdb.Options().Addr, rdb.Options().DB)
	r = runCLI("audit", "--database-url", url, "--valkey-url", vkURL)
	if r.code != exitFindings || r.stdout != "valkey budget acme/gone: orphan_spend_ledger: expected 0, found 1\n" {
		t.Errorf("valkey: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := runCLI("status", "--repair", "--database-url", url); r.code != exitUsage {
		t.Errorf("--repair on status: exit %d", r.code)
	}
}
