package tests

import (
	"os"
	"strings"
	"testing"

	"github.com/spendcap/spendcap/internal/testenv"
)

func TestReadmeSQLQuickStartRuns(t *testing.T) {
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
	if _, err := db.Exec(ctx, block); err != nil {
		t.Fatalf("README quick start: %v", err)
	}
	// 1200 reported, 2750 settled, and the key's 500, which counts on its team.
	st := mustStatus(t, db, "team-a", nil)
	if st.Usage["tokens"] != 4450 || st.Reserved["tokens"] != 0 {
		t.Errorf("after the quick start: usage %v reserved %v", st.Usage, st.Reserved)
	}
	if key := mustStatus(t, db, "team-a/key-1", nil); key.Usage["tokens"] != 500 || key.ParentID == nil || *key.ParentID != "team-a" {
		t.Errorf("the key after the quick start: usage %v, parent %v", key.Usage, key.ParentID)
	}
}
