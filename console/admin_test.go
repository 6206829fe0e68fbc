package console_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/console"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/testenv"
)

// adminServer serves a console with the admin actions on (or off), logging to the returned buffer.
func adminServer(t *testing.T, admin bool) (*httptest.Server, *gobinding.Client, *testenv.SyncBuffer) {
	t.Helper()
	b := gobinding.NewClient(testenv.Pool(t), gobinding.Options{})
	if _, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "k", HardLimits: map[string]int64{"usd": 100}}); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.SyncBuffer{}
	opts := console.Options{Backend: b, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	if admin {
		opts.Admin = b
	}
	h, err := console.NewHandler(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, b, logs
}

var tokenRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// session opens the budget's page in a client with cookies and returns it with the page's token.
func session(t *testing.T, srv *httptest.Server) (*http.Client, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	res, err := c.Get(srv.URL + "/budget?id=k")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := tokenRE.FindSubmatch(body)
	if m == nil {
		return c, ""
	}
	return c, string(m[1])
}

func post(t *testing.T, c *http.Client, u string, form url.Values, header http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// An admin action runs only with the form's token, from the console's own origin, when the
// admin actions are on; each one that runs, and each refusal, is logged with its name.
func TestConsoleAdminActionsNeedTheTokenTheOriginAndTheOption(t *testing.T) {
	t.Parallel()
	srv, b, logs := adminServer(t, true)
	c, token := session(t, srv)
	if token == "" {
		t.Fatal("the budget page of an admin console has no form token")
	}
	set := url.Values{"action": {"set_limits"}, "id": {"k"}, "dim_0": {"usd"}, "hard_0": {"250"}, "soft_0": {""}}
	withToken := func(v url.Values, tok string) url.Values {
		w := url.Values{"csrf": {tok}}
		for k, x := range v {
			w[k] = x
		}
		return w
	}
	for _, r := range []struct {
		name   string
		form   url.Values
		header http.Header
		status int
	}{
		{"no token", set, nil, http.StatusForbidden},
		{"another browser's token", withToken(set, "AAAA"+token[4:]), nil, http.StatusForbidden},
		{"a cross-site request", withToken(set, token), http.Header{"Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden},
		{"a bad figure", withToken(url.Values{"action": {"set_limits"}, "id": {"k"}, "dim_0": {"usd"}, "hard_0": {"lots"}}, token), nil, http.StatusBadRequest},
	} {
		if status, _ := post(t, c, srv.URL+"/admin/apply", r.form, r.header); status != r.status {
			t.Errorf("%s: %d, want %d", r.name, status, r.status)
		}
	}
	if st, _ := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "k"}); st.HardLimits["usd"] != 100 {
		t.Fatalf("a refused action changed the budget: %v", st.HardLimits)
	}
	// Confirming changes nothing; applying does, and goes back to the budget's page.
	status, body := post(t, c, srv.URL+"/admin/confirm", withToken(set, token), nil)
	if st, _ := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "k"}); status != http.StatusOK || !strings.Contains(body, "Set the limits of k") ||
		st.HardLimits["usd"] != 100 {
		t.Fatalf("confirm: %d, limits %v", status, st.HardLimits)
	}
	status, _ = post(t, c, srv.URL+"/admin/apply", withToken(set, token), nil)
	if st, _ := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "k"}); status != http.StatusSeeOther || st.HardLimits["usd"] != 250 {
		t.Fatalf("apply: %d, limits %v", status, st.HardLimits)
	}
	log := logs.String()
	if !strings.Contains(log, `msg="console: admin action" action=set_limits budget_id=k`) || strings.Count(log, "admin action refused") != 4 {
		t.Errorf("log:\n%s", log)
	}

	// Off: no form, and a post with a valid-looking token is refused.
	off, b2, _ := adminServer(t, false)
	c2, token2 := session(t, off)
	if token2 != "" {
		t.Errorf("a read-only console's page has a form token")
	}
	if status, _ := post(t, c2, off.URL+"/admin/apply", withToken(set, token), nil); status != http.StatusForbidden {
		t.Errorf("admin off: %d, want 403", status)
	}
	if st, _ := b2.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "k"}); st.HardLimits["usd"] != 100 {
		t.Errorf("a read-only console changed the budget: %v", st.HardLimits)
	}
}
