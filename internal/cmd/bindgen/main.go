// Command bindgen writes the generated calls of internal/pgfn (`go generate ./internal/pgfn`, `make
// generate`). It starts a throwaway PostgreSQL from the local server binaries (or creates a
// database on $SPENDCAP_TEST_DATABASE_URL's server), runs `migrate up` on it and introspects the
// functions of schema spendcap.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spendcap/spendcap/internal/bindgen"
	"github.com/spendcap/spendcap/internal/localserver"
)

func main() {
	out := flag.String("out", "functions_gen.go", "file to write")
	pkg := flag.String("package", "pgfn", "package name of the generated file")
	flag.Parse()
	if err := run(*out, *pkg); err != nil {
		fmt.Fprintf(os.Stderr, "bindgen: %v\n", err)
		os.Exit(1)
	}
}

func run(out, pkg string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url, cleanup, err := database(ctx)
	if err != nil {
		return err
	}
	defer cleanup()
	src, err := bindgen.Generate(ctx, url, nil, pkg)
	if err != nil {
		return err
	}
	return os.WriteFile(out, src, 0o644)
}

// database returns an empty database to generate from.
func database(ctx context.Context) (string, func(), error) {
	if admin := os.Getenv("SPENDCAP_TEST_DATABASE_URL"); admin != "" {
		name := fmt.Sprintf("spendcap_bindgen_%d", os.Getpid())
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return "", nil, err
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			return "", nil, err
		}
		return localserver.WithDatabase(admin, name), func() {
			if c, err := pgx.Connect(context.Background(), admin); err == nil {
				_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
				_ = c.Close(context.Background())
			}
		}, nil
	}
	pg, err := localserver.StartPostgres(ctx, localserver.PostgresOptions{})
	if err != nil {
		return "", nil, err
	}
	return pg.URL, pg.Stop, nil
}
