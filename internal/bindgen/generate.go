package bindgen

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"

	"github.com/spendcap/spendcap/internal/migrator"
)

// Generate migrates the empty database at url with the SQL in fsys (nil: the embedded SQL), the
// way `migrate up` does, and renders the bindings of its schema spendcap as package pkg.
func Generate(ctx context.Context, url string, fsys fs.FS, pkg string) ([]byte, error) {
	m, err := migrator.New(url, migrator.Options{FS: fsys})
	if err != nil {
		return nil, err
	}
	if _, err := m.Up(ctx); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	fns, err := Introspect(ctx, conn, "spendcap")
	if err != nil {
		return nil, err
	}
	return Render(pkg, "spendcap", fns)
}
