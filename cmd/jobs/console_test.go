package main

import (
	"context"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	neturl "net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/testenv"
)

// The worker serves the console with --console-addr: every page linked from / answers, and a
// budget's page shows its figures. A port alone listens on loopback.
func TestWorkerServesTheConsoleWhoseLinksAllAnswer(t *testing.T) {
	t.Parallel()
	url := testenv.NewDatabase(t)
	c := gobinding.NewClient(testenv.PoolFor(t, url), gobinding.Options{})
	for _, p := range []spendcap.CreateBudgetParams{
		{BudgetID: "org", HardLimits: map[string]int64{"usd": 1000}},
		{BudgetID: "org/team", ParentID: "org", HardLimits: map[string]int64{"usd": 100}},
	} {
		if _, err := c.CreateBudget(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.ReportUsage(context.Background(), spendcap.ReportUsageParams{BudgetID: "org/team", Deltas: map[string]int64{"usd": 42}}); err != nil {
		t.Fatal(err)
	}
	addr := testenv.FreeAddr(t)
	_, port, _ := strings.Cut(addr, ":")
	_, stderr := startJobs(t, "--database-url", url, "--console-addr", ":"+port)
	testenv.WaitForOutput(t, stderr, "serving the console", 30*time.Second, nil)
	if !strings.Contains(stderr.String(), "url=http://127.0.0.1:"+port+"/") {
		t.Errorf("the console is not on loopback: %s", stderr.String())
	}
	base := "http://127.0.0.1:" + port
	href := regexp.MustCompile(`href="(/[^"]*)"`)
	seen := map[string]bool{}
	queue := []string{"/"}
	for len(queue) > 0 && len(seen) < 40 {
		path := queue[0]
		queue = queue[1:]
		if seen[path] {
			continue
		}
		seen[path] = true
		code, body := testenv.HTTPGet(base + path)
		if code != http.StatusOK {
			t.Errorf("%s: %d", path, code)
			continue
		}
		for _, m := range href.FindAllStringSubmatch(body, -1) {
			queue = append(queue, html.UnescapeString(m[1]))
		}
	}
	if !seen["/budget?id=org%2Fteam"] || !seen["/budgets?parent=org"] {
		t.Errorf("pages reached from /: %v", seen)
	}
	if _, body := testenv.HTTPGet(base + "/budget?id=org%2Fteam"); !strings.Contains(body, `<td class="fig usage">42</td>`) {
		t.Errorf("org/team's page lacks its usage:\n%s", body)
	}
}

// --console-admin puts the admin forms on a budget's page; off a loopback address it needs a
// password, or the worker does not start.
func TestWorkerConsoleAdminNeedsAPasswordOffLoopback(t *testing.T) {
	t.Parallel()
	url := testenv.NewDatabase(t)
	c := gobinding.NewClient(testenv.PoolFor(t, url), gobinding.Options{})
	if _, err := c.CreateBudget(context.Background(), spendcap.CreateBudgetParams{BudgetID: "org", HardLimits: map[string]int64{"usd": 1000}}); err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(testenv.FreeAddr(t), ":")
	out, err := exec.Command(testenv.Binary(t, "."), "--metrics-addr", "", "--database-url", url, "--console-addr", "0.0.0.0:"+port,
		"--console-admin").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "needs SPENDCAP_CONSOLE_USER") {
		t.Errorf("--console-admin on 0.0.0.0 without a password: %v\n%s", err, out)
	}
	_, stderr := startJobs(t, "--database-url", url, "--console-addr", ":"+port, "--console-admin")
	testenv.WaitForOutput(t, stderr, "serving the console", 30*time.Second, nil)
	if code, body := testenv.HTTPGet("http://127.0.0.1:" + port + "/budget?id=org"); code != http.StatusOK || !strings.Contains(body, `id="limits-form"`) {
		t.Errorf("the budget page with --console-admin: %d, admin forms %v", code, strings.Contains(body, `id="limits-form"`))
	}
}

// The worker's console shows the worker itself: when it last rolled, purged and audited, what
// the audit found, and the webhook deliveries by state with each endpoint's last error.
func TestWorkerConsoleShowsTheJobsAndTheDeliveries(t *testing.T) {
	t.Parallel()
	url := testenv.NewDatabase(t)
	pool := testenv.PoolFor(t, url)
	c := gobinding.NewClient(pool, gobinding.Options{})
	bg := context.Background()
	// Nothing listens on the endpoint: its delivery fails and is retried.
	dead := "http://user:hunter2@" + testenv.FreeAddr(t) + "/hook"
	if _, err := c.CreateWebhook(bg, gobinding.CreateWebhookParams{URL: dead, Secret: "0123456789abcdef0123456789abcdef"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateBudget(bg, spendcap.CreateBudgetParams{BudgetID: "org", HardLimits: map[string]int64{"usd": 100}, AlertPercents: []int32{50}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReportUsage(bg, spendcap.ReportUsageParams{BudgetID: "org", Deltas: map[string]int64{"usd": 60}}); err != nil {
		t.Fatal(err)
	}
	// A stored figure that disagrees with the usage: the audit finds it.
	if _, err := pool.Exec(bg, `UPDATE spendcap.budgets SET utilisation_permille = 1 WHERE budget_id = 'org'`); err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(testenv.FreeAddr(t), ":")
	_, stderr := startJobs(t, "--database-url", url, "--console-addr", ":"+port, "--dispatch-interval", "200ms")
	testenv.WaitForOutput(t, stderr, "serving the console", 30*time.Second, nil)
	base := "http://127.0.0.1:" + port
	text := func(body, id string) string {
		m := regexp.MustCompile(`id="` + id + `">(.*?)</`).FindStringSubmatch(body)
		if m == nil {
			return ""
		}
		return html.UnescapeString(m[1])
	}
	var body string
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body = testenv.HTTPGet(base + "/")
		if strings.HasSuffix(text(body, "last-roll"), "ago") && strings.HasSuffix(text(body, "last-purge"), "ago") &&
			strings.TrimSpace(text(body, "audit-findings")) == "postgres: 1 utilisation" && text(body, "deliveries-retrying") == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the overview never showed the jobs run and the delivery retrying:\n%s", body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := text(body, "count-events"); got != "1" {
		t.Errorf("events in 24 h: %q, want 1", got)
	}
	_, hooks := testenv.HTTPGet(base + "/webhooks")
	if strings.Contains(hooks, "hunter2") || !strings.Contains(hooks, `<td class="fig retrying">1</td>`) ||
		!strings.Contains(hooks, "connection refused") {
		t.Errorf("the webhooks page shows the password, or not the retrying delivery and its error:\n%s", hooks)
	}
}

// Workers that share SPENDCAP_CONSOLE_CSRF_KEY accept the admin forms of each other's pages (as
// behind one load balancer); a worker with its own key refuses them.
func TestWorkersSharingTheCSRFKeyAcceptEachOthersForms(t *testing.T) {
	t.Parallel()
	url := testenv.NewDatabase(t)
	c := gobinding.NewClient(testenv.PoolFor(t, url), gobinding.Options{})
	if _, err := c.CreateBudget(context.Background(), spendcap.CreateBudgetParams{BudgetID: "org", HardLimits: map[string]int64{"usd": 1000}}); err != nil {
		t.Fatal(err)
	}
	key := []string{"SPENDCAP_CONSOLE_CSRF_KEY=" + strings.Repeat("k", 32)}
	start := func(env []string) string {
		_, port, _ := strings.Cut(testenv.FreeAddr(t), ":")
		_, stderr := startJobsEnv(t, env, "--database-url", url, "--console-addr", ":"+port, "--console-admin")
		testenv.WaitForOutput(t, stderr, "serving the console", 30*time.Second, nil)
		return "http://127.0.0.1:" + port
	}
	a, b, own := start(key), start(key), start(nil)
	jar, _ := cookiejar.New(nil) // cookies are per host, not per port: every worker gets a's cookie
	client := &http.Client{Jar: jar}
	res, err := client.Get(a + "/budget?id=org")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(body)
	if m == nil {
		t.Fatal("no form token on a's page")
	}
	form := neturl.Values{"csrf": {string(m[1])}, "action": {"reset_budget"}, "id": {"org"}}
	for _, c := range []struct {
		base   string
		status int
	}{{b, http.StatusOK}, {own, http.StatusForbidden}} {
		res, err := client.PostForm(c.base+"/admin/confirm", form)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != c.status {
			t.Errorf("a's form confirmed by %s: %d, want %d", c.base, res.StatusCode, c.status)
		}
	}
	// A key too short to sign with: the worker does not start.
	short := exec.Command(testenv.Binary(t, "."), "--metrics-addr", "", "--database-url", url, "--console-addr", ":0")
	short.Env = append(os.Environ(), "SPENDCAP_CONSOLE_CSRF_KEY=short")
	out, err := short.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "at least 32 bytes") {
		t.Errorf("a short key: %v\n%s", err, out)
	}
}
