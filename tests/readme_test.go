package tests

import (
	"os"
	"strings"
	"testing"

	"github.com/spendcap/spendcap/internal/testenv"
)

// The quick start runs on a new database, and again on the same one (as a deploy script would):
// create_budget's if_exists => 'update' makes the second run no error.
func TestReadmeSQLQuickStartRunsTwice(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, found := strings.Cut(string(readme), "```sql\n")
	block, _, closed := strings.Cut(rest, "```")
	if !found || !closed {
		t.Fatal("README.md has no ```sql block")
	}
	db := testenv.Pool(t)
	for run := 1; run <= 2; run++ {
		if _, err := db.Exec(ctx, block); err != nil {
			t.Fatalf("README quick start, run %d: %v", run, err)
		}
		// 1200 reported once (the second run's report replays its dedup key), 2750 settled and
		// the key's 500 (which counts on its team) each run.
		st := mustStatus(t, db, "team-a", nil)
		if want := int64(1200 + (2750+500)*run); st.Usage["tokens"] != want || st.Reserved["tokens"] != 0 || len(st.AlertPercents) != 2 {
			t.Errorf("after run %d: usage %v reserved %v alerts %v, want %d tokens", run, st.Usage, st.Reserved, st.AlertPercents, want)
		}
		if key := mustStatus(t, db, "team-a/key-1", nil); key.Usage["tokens"] != int64(500*run) || key.ParentID == nil || *key.ParentID != "team-a" {
			t.Errorf("the key after run %d: usage %v, parent %v", run, key.Usage, key.ParentID)
		}
	}
}
