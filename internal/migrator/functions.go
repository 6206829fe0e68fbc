package migrator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// FunctionFile is one file of sql/functions.
type FunctionFile struct {
	Name   string
	SHA256 string
	SQL    string
}

// FunctionFiles lists the functions/ files of fsys (nil: the embedded ones) in the order they are
// applied, by file name.
func FunctionFiles(fsys fs.FS) ([]FunctionFile, error) {
	fsys = sqlFS(fsys)
	entries, err := fs.ReadDir(fsys, "functions")
	if err != nil {
		return nil, err
	}
	var files []FunctionFile
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		b, err := fs.ReadFile(fsys, path.Join("functions", e.Name()))
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		files = append(files, FunctionFile{Name: e.Name(), SHA256: hex.EncodeToString(sum[:]), SQL: string(b)})
	}
	slices.SortFunc(files, func(a, b FunctionFile) int { return strings.Compare(a.Name, b.Name) })
	return files, nil
}

type functionRecord struct {
	sha256        string
	schemaVersion int64
}

func functionRecords(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
	QueryRow(context.Context, string, ...any) pgx.Row
}) (map[string]functionRecord, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('public.`+FunctionsTable+`') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, err
	}
	recs := map[string]functionRecord{}
	if !exists {
		return recs, nil
	}
	rows, err := q.Query(ctx, `SELECT name, sha256, schema_version FROM public.`+FunctionsTable)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var r functionRecord
		if err := rows.Scan(&name, &r.sha256, &r.schemaVersion); err != nil {
			return nil, err
		}
		recs[name] = r
	}
	return recs, rows.Err()
}

// applyFunctions applies, in the deploy transaction tx, every function file whose sha256 or
// schema version differs from its record, drops the functions no file defines any more, then
// refuses the result if a function name became overloaded or an entry point lost its
// implementation.
func (m *Migrator) applyFunctions(ctx context.Context, tx pgx.Tx, version uint, res *FunctionChange) error {
	files, err := FunctionFiles(m.opts.FS)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, functionsTableDDL); err != nil {
		return fmt.Errorf("functions table: %w", err)
	}
	recs, err := functionRecords(ctx, tx)
	if err != nil {
		return err
	}
	for _, f := range files {
		if r, ok := recs[f.Name]; ok && r.sha256 == f.SHA256 && r.schemaVersion == int64(version) {
			res.Unchanged++
			continue
		}
		if _, err := tx.Exec(ctx, f.SQL); err != nil {
			return fmt.Errorf("functions/%s: %w", f.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO public.`+FunctionsTable+` (name, sha256, schema_version) VALUES ($1, $2, $3)
			ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256, schema_version = excluded.schema_version, applied_at = now()`,
			f.Name, f.SHA256, int64(version)); err != nil {
			return err
		}
		res.Applied = append(res.Applied, f.Name)
	}
	if err := dropRemoved(ctx, tx, files, res); err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT n.nspname || '.' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname IN ('spendcap', 'spendcap_internal') GROUP BY 1 HAVING count(*) > 1 ORDER BY 1`)
	if err != nil {
		return err
	}
	overloaded, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	if len(overloaded) > 0 {
		return fmt.Errorf("functions: overloaded after apply (a signature changed without dropping the old one): %s", strings.Join(overloaded, ", "))
	}
	if err := checkEntryPoints(ctx, tx); err != nil {
		return err
	}
	if len(res.Dropped) > 0 || len(res.Removed) > 0 {
		m.opts.Logger.Info("functions of removed files dropped", "component", "functions", "files", res.Removed, "dropped", res.Dropped)
	}
	if len(res.Applied) > 0 {
		m.opts.Logger.Info("functions applied", "component", "functions", "files", len(res.Applied), "unchanged", res.Unchanged)
	}
	return nil
}

// checkEntryPoints refuses a deploy in which an entry point (a function of schema spendcap, which
// the migrations define) has no implementation of the same name in spendcap_internal taking the
// same argument types and returning the same type: the wrapper would fail at its first call.
func checkEntryPoints(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, `SELECT w.oid::regprocedure::text FROM pg_proc w
		WHERE w.pronamespace = 'spendcap'::regnamespace
		  AND NOT EXISTS (SELECT FROM pg_proc i
		                  WHERE i.pronamespace = 'spendcap_internal'::regnamespace AND i.proname = w.proname
		                    AND i.proargtypes = w.proargtypes AND i.prorettype = w.prorettype AND i.proretset = w.proretset)
		ORDER BY 1`)
	if err != nil {
		return err
	}
	missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("functions: entry points without an implementation of the same argument and result types in spendcap_internal: %s", strings.Join(missing, ", "))
	}
	return nil
}

// functionSchemas are the schemas whose functions sql/functions owns: every function there is
// defined by a file, and one that no file defines is left over from a deleted or renamed file.
// Schema spendcap holds the entry points, which the migrations own.
var functionSchemas = []string{"spendcap_internal"}

// createFunction finds the functions a file defines: names are qualified, and never overloaded
// (applyFunctions refuses that), so a qualified name is one function.
var createFunction = regexp.MustCompile(`(?i)\bcreate\s+(?:or\s+replace\s+)?(?:function|procedure)\s+"?([a-z_][a-z0-9_]*)"?\s*\.\s*"?([a-z_][a-z0-9_]*)"?\s*\(`)

// definedFunctions are the schema-qualified names (lower case) of the functions files define.
func definedFunctions(files []FunctionFile) map[string]bool {
	names := map[string]bool{}
	for _, f := range files {
		for _, m := range createFunction.FindAllStringSubmatch(f.SQL, -1) {
			names[strings.ToLower(m[1])+"."+strings.ToLower(m[2])] = true
		}
	}
	return names
}

// leftoverFunctions lists, as regprocedure text, the functions of functionSchemas that no file in
// files defines.
func leftoverFunctions(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, files []FunctionFile) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT n.nspname || '.' || p.proname, p.oid::regprocedure::text FROM pg_proc p
		JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = ANY($1) ORDER BY 2`, functionSchemas)
	if err != nil {
		return nil, err
	}
	defined := definedFunctions(files)
	var out []string
	var name, sig string
	_, err = pgx.ForEachRow(rows, []any{&name, &sig}, func() error {
		if !defined[name] {
			out = append(out, sig)
		}
		return nil
	})
	return out, err
}

// dropRemoved drops the functions no file defines any more and forgets the records of files that
// are gone, so a deleted or renamed file leaves nothing callable behind.
func dropRemoved(ctx context.Context, tx pgx.Tx, files []FunctionFile, res *FunctionChange) error {
	leftover, err := leftoverFunctions(ctx, tx, files)
	if err != nil {
		return err
	}
	for _, sig := range leftover {
		// No CASCADE: a view or another object built on the function stops the deploy instead of
		// vanishing with it.
		if _, err := tx.Exec(ctx, `DROP FUNCTION `+sig); err != nil {
			return fmt.Errorf("functions: drop %s, which no file defines any more: %w", sig, err)
		}
		res.Dropped = append(res.Dropped, sig)
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name
	}
	rows, err := tx.Query(ctx, `DELETE FROM public.`+FunctionsTable+` WHERE name <> ALL($1) RETURNING name`, names)
	if err != nil {
		return err
	}
	removed, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	slices.Sort(removed)
	res.Removed = append(res.Removed, removed...)
	return nil
}

func (m *Migrator) clearFunctionRecords(ctx context.Context, conn *pgx.Conn) error {
	_, err := conn.Exec(ctx, `DO $clear$ BEGIN
		IF to_regclass('public.`+FunctionsTable+`') IS NOT NULL THEN DELETE FROM public.`+FunctionsTable+`; END IF;
	END $clear$`)
	return err
}
