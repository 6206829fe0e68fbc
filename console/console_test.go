package console_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/spendcap/spendcap/console"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/testenv"
)

func get(t *testing.T, h http.Handler, path string) (*http.Response, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	res, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

// Every page carries a Content-Security-Policy that lets only the console's own script run and nothing load from
// elsewhere; an unknown budget is a 404 and a search ids cannot match says why.
func TestConsolePagesRunOnlyTheirOwnScriptAndAnswerMistakesPlainly(t *testing.T) {
	t.Parallel()
	h, err := console.NewHandler(console.Options{Backend: gobinding.NewClient(testenv.Pool(t), gobinding.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path   string
		status int
		body   string
	}{
		{"/", http.StatusOK, "Highest utilisation"},
		{"/budgets", http.StatusOK, "No budget matches."},
		{"/budget?id=nobody", http.StatusNotFound, "No such budget."},
		{"/budgets?q=a%7Bb", http.StatusOK, "id_prefix: must be 1..128 bytes"},
		{"/assets/console.css", http.StatusOK, "font-variant-numeric"},
		{"/events", http.StatusOK, "No event matches."},
		{"/events?kind=nonsense", http.StatusOK, "No event matches."},
		{"/events/stream?after=x", http.StatusBadRequest, "after must be"},
		{"/nothing", http.StatusNotFound, ""},
	} {
		res, body := get(t, h, c.path)
		if res.StatusCode != c.status || !strings.Contains(body, c.body) {
			t.Errorf("%s: %d %q, want %d with %q", c.path, res.StatusCode, body, c.status, c.body)
		}
		csp := res.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "unsafe") || res.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: Content-Security-Policy %q, X-Frame-Options %q", c.path, csp, res.Header.Get("X-Frame-Options"))
		}
	}
}

func TestConsoleBasicAuthAsksForTheUserAndPassword(t *testing.T) {
	t.Parallel()
	h, err := console.NewHandler(console.Options{Backend: gobinding.NewClient(testenv.Pool(t), gobinding.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(console.BasicAuth(h, "test", "ops", "s3cret"))
	defer srv.Close()
	for _, c := range []struct {
		user, password string
		status         int
	}{{"", "", http.StatusUnauthorized}, {"ops", "wrong", http.StatusUnauthorized}, {"ops", "s3cret", http.StatusOK},
		{"ops2", "s3cret", http.StatusUnauthorized}, {"op", "s3cret", http.StatusUnauthorized}} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
		if c.user != "" {
			req.SetBasicAuth(c.user, c.password)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != c.status || (c.status == http.StatusUnauthorized) != (res.Header.Get("WWW-Authenticate") != "") {
			t.Errorf("%s/%s: %d (WWW-Authenticate %q), want %d", c.user, c.password, res.StatusCode, res.Header.Get("WWW-Authenticate"), c.status)
		}
	}
}
