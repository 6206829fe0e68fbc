package bindgen_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	"github.com/spendcap/spendcap/internal/bindgen"
	"github.com/spendcap/spendcap/internal/testenv"
	spendcapsql "github.com/spendcap/spendcap/sql"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var ctx = context.Background()

const committed = "../pgfn/functions_gen.go"

func TestCommittedBindingsAreFresh(t *testing.T) {
	t.Parallel()
	src, err := bindgen.Generate(ctx, testenv.NewEmptyDatabase(t), nil, "pgfn")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(src, want) {
		t.Errorf("internal/pgfn/functions_gen.go is stale: run make generate and commit it")
	}
	if !strings.HasPrefix(string(src), bindgen.Header+"\n") {
		t.Errorf("generated file does not start with the DO NOT EDIT header")
	}
}

// sqlWith copies the embedded SQL with one file's content changed.
func sqlWith(t *testing.T, name string, change func(string) string) fstest.MapFS {
	t.Helper()
	out := fstest.MapFS{}
	err := fs.WalkDir(spendcapsql.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".sql") {
			return err
		}
		b, err := fs.ReadFile(spendcapsql.FS, p)
		if p == name {
			b = []byte(change(string(b)))
		}
		out[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSignatureChangeChangesTheBindings(t *testing.T) {
	t.Parallel()
	changed := sqlWith(t, "functions/110_budget_status.sql", func(s string) string {
		return strings.Replace(s, "at        timestamptz DEFAULT NULL)", "at        timestamptz DEFAULT NULL,\n    verbose   boolean DEFAULT false)", 1)
	})
	// A new argument is in its entry point's line too.
	changed["functions/990_entry_points.sql"].Data = []byte(strings.Replace(string(changed["functions/990_entry_points.sql"].Data),
		"'budget_id text, at timestamp with time zone DEFAULT NULL::timestamp with time zone',\n        'spendcap.budget_status_result'",
		"'budget_id text, at timestamp with time zone DEFAULT NULL::timestamp with time zone, verbose boolean DEFAULT false',\n        'spendcap.budget_status_result'", 1))
	src, err := bindgen.Generate(ctx, testenv.NewEmptyDatabase(t), changed, "pgfn")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(committed)
	if bytes.Equal(src, want) {
		t.Fatal("a new argument left the generated code unchanged: the freshness check could not catch it")
	}
	for _, s := range []string{"Verbose *bool", `sql += "verbose => $" + strconv.Itoa(len(args)-1)`,
		`"spendcap.budget_status(text,timestamp with time zone,boolean)"`} {
		if !strings.Contains(string(src), s) {
			t.Errorf("generated code lacks %q", s)
		}
	}
}

func TestRefusesWhatItCannotBind(t *testing.T) {
	t.Parallel()
	for name, sql := range map[string]string{
		"overloaded": `CREATE FUNCTION spendcap.budget_status(budget_id integer) RETURNS spendcap.budget_status_result
			LANGUAGE sql AS $f$ SELECT NULL::spendcap.budget_status_result $f$`,
		"OUT columns": `CREATE FUNCTION spendcap.f(a text, OUT b text) LANGUAGE sql AS $f$ SELECT a $f$`,
		"bare record": `CREATE FUNCTION spendcap.f(a text) RETURNS TABLE (b text) LANGUAGE sql AS $f$ SELECT a $f$`,
		"scalar":      `CREATE FUNCTION spendcap.f(a text) RETURNS text LANGUAGE sql AS $f$ SELECT a $f$`,
	} {
		t.Run(name, func(t *testing.T) {
			url := testenv.NewDatabase(t)
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			if _, err := conn.Exec(ctx, sql); err != nil {
				t.Fatal(err)
			}
			if _, err := bindgen.Introspect(ctx, conn, "spendcap"); err == nil {
				t.Errorf("introspection accepted it")
			}
		})
	}
}

func TestRefusesUnknownTypes(t *testing.T) {
	t.Parallel()
	url := testenv.NewDatabase(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE FUNCTION spendcap.f(a numeric) RETURNS spendcap.deleted_result
		LANGUAGE sql AS $f$ SELECT NULL::spendcap.deleted_result $f$`); err != nil {
		t.Fatal(err)
	}
	fns, err := bindgen.Introspect(ctx, conn, "spendcap")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bindgen.Render("pgfn", "spendcap", fns); err == nil || !strings.Contains(err.Error(), `"numeric"`) {
		t.Errorf("render of a numeric argument: %v, want an error naming the type", err)
	}
}
