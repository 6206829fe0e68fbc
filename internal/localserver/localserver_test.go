package localserver_test

import (
	"context"
	"strings"
	"testing"

	"github.com/spendcap/spendcap/internal/localserver"
)

func TestMissingValkeyServerSaysHowToInstallIt(t *testing.T) {
	t.Setenv("SPENDCAP_VALKEY_SERVER", "/nonexistent/valkey-server")
	_, err := localserver.StartValkey(context.Background(), localserver.ValkeyOptions{})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/valkey-server") {
		t.Errorf("err = %v, want it to name the missing binary", err)
	}
}

func TestMissingPostgresSaysHowToInstallIt(t *testing.T) {
	t.Setenv("SPENDCAP_PG_BIN", "/nonexistent")
	t.Setenv("PATH", "/nonexistent")
	bin, err := localserver.FindPostgresBin()
	if err == nil {
		// Installed under /usr/lib/postgresql: the fallback found it, as it should.
		if !strings.HasPrefix(bin, "/usr/lib/postgresql/") {
			t.Errorf("found %s", bin)
		}
		return
	}
	if !strings.Contains(err.Error(), "make deps") {
		t.Errorf("err = %v, want install instructions", err)
	}
}

func TestValkeyStartsAndStops(t *testing.T) {
	t.Parallel()
	v, err := localserver.StartValkey(context.Background(), localserver.ValkeyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := localserver.Ping(context.Background(), v.Addr); err != nil {
		t.Errorf("PING: %v", err)
	}
	v.Stop()
	if err := localserver.Ping(context.Background(), v.Addr); err == nil {
		t.Errorf("valkey still answers after Stop")
	}
}

// `go test ./...` runs packages at the same time: a test that asked for a fixed port (the dev
// defaults, say) could shut another package's server down, so a fixed port fails in a test.
func TestAFixedPortIsRefusedInATest(t *testing.T) {
	_, err := localserver.StartPostgres(context.Background(), localserver.PostgresOptions{Port: 54329})
	if err == nil || !strings.Contains(err.Error(), "fixed port 54329") {
		t.Errorf("postgres on a fixed port in a test: %v, want it refused", err)
	}
	_, err = localserver.StartValkey(context.Background(), localserver.ValkeyOptions{Port: 63799})
	if err == nil || !strings.Contains(err.Error(), "fixed port 63799") {
		t.Errorf("valkey on a fixed port in a test: %v, want it refused", err)
	}
}
