package tests

import (
	"strings"
	"testing"

	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

// sc_events_since reads one slot group's stream: its key must be sc:{<group>}:events, and its
// arguments are checked as events_since checks them.
func TestValkeyEventsSinceChecksItsKeyAndArguments(t *testing.T) {
	t.Parallel()
	rdb := testenv.Valkey(t)
	if _, err := valkey.New(ctx, rdb, valkey.Options{AllowVolatile: true, AllowReplay: true}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ key, args, want string }{
		{"sc:{a}", `{}`, "SC002 keys: "},
		{"sc:{a}:events", `{"max_rows": 0}`, "SC002 max_rows: "},
		{"sc:{a}:events", `{"after_id": -1}`, "SC002 after_id: "},
		{"sc:{a}:events", `{"after_id": 1.5}`, "SC002 after_id: "},
	} {
		err := rdb.FCallRO(ctx, "sc_events_since", []string{c.key}, c.args).Err()
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s %s: %v, want %s...", c.key, c.args, err, c.want)
		}
	}
	if got, err := rdb.FCallRO(ctx, "sc_events_since", []string{"sc:{a}:events"}, `{}`).Text(); err != nil || got != "[]" {
		t.Errorf("an empty stream: %q %v", got, err)
	}
}
