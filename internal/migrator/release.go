package migrator

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ReleasesTable records each release `migrate up` (or an install script) deployed.
const ReleasesTable = "spendcap_releases"

const releasesTableDDL = `CREATE TABLE IF NOT EXISTS public.` + ReleasesTable + ` (
    release        text        NOT NULL PRIMARY KEY,
    schema_version bigint      NOT NULL,
    deployed_at    timestamptz NOT NULL DEFAULT now()
)`

// Release is one spendcap release: its name, the schema version it migrates to and its date.
type Release struct {
	Name   string `json:"name"`
	Schema uint   `json:"schema"`
	Date   string `json:"date"`
}

// Releases lists the releases in fsys's releases.txt (nil: the embedded one), oldest first; the
// last one is the release the tree builds. A tree without the file has none.
func Releases(fsys fs.FS) ([]Release, error) {
	b, err := fs.ReadFile(sqlFS(fsys), "releases.txt")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var out []Release
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("releases.txt line %d: want name, schema version and date", n)
		}
		v, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("releases.txt line %d: schema version %q", n, f[1])
		}
		out = append(out, Release{Name: f[0], Schema: uint(v), Date: f[2]})
	}
	return out, nil
}

// CurrentRelease is the release the tree of fsys (nil: the embedded one) builds: the last line of
// releases.txt; "" without one.
func CurrentRelease(fsys fs.FS) string {
	rs, err := Releases(fsys)
	if err != nil || len(rs) == 0 {
		return ""
	}
	return rs[len(rs)-1].Name
}

// recordRelease notes in tx that release is deployed. Deploying it again changes nothing unless
// another release was deployed since (a rollback), which makes it the newest again.
func recordRelease(ctx context.Context, tx pgx.Tx, release string, schema uint) error {
	if release == "" {
		return nil
	}
	if _, err := tx.Exec(ctx, releasesTableDDL); err != nil {
		return fmt.Errorf("releases table: %w", err)
	}
	_, err := tx.Exec(ctx, `INSERT INTO public.`+ReleasesTable+` AS r (release, schema_version) VALUES ($1, $2)
		ON CONFLICT (release) DO UPDATE SET schema_version = excluded.schema_version, deployed_at = now()
		WHERE r.deployed_at < (SELECT max(o.deployed_at) FROM public.`+ReleasesTable+` AS o)`, release, int64(schema))
	return err
}

// databaseRelease is the release last deployed on the database: the newest record, else (a
// database deployed before releases were recorded) the release whose schema version it has, when
// exactly one has it, with inferred = true; "" when neither tells.
func databaseRelease(ctx context.Context, conn *pgx.Conn, fsys fs.FS, schema uint) (name string, inferred bool, err error) {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('public.`+ReleasesTable+`') IS NOT NULL`).Scan(&exists); err != nil {
		return "", false, err
	}
	if exists {
		err := conn.QueryRow(ctx, `SELECT release FROM public.`+ReleasesTable+` ORDER BY deployed_at DESC, release DESC LIMIT 1`).Scan(&name)
		if err == nil {
			return name, false, nil
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return "", false, err
		}
	}
	rs, err := Releases(fsys)
	if err != nil {
		return "", false, err
	}
	for _, r := range rs {
		if r.Schema == schema {
			if name != "" {
				return "", false, nil
			}
			name = r.Name
		}
	}
	return name, name != "", nil
}
