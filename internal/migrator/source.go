package migrator

import (
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/golang-migrate/migrate/v4/source"
	"github.com/golang-migrate/migrate/v4/source/iofs"

	spendcapsql "github.com/spendcap/spendcap/sql"
)

func sqlFS(fsys fs.FS) fs.FS {
	if fsys == nil {
		return spendcapsql.FS
	}
	return fsys
}

func newSource(fsys fs.FS) (source.Driver, error) {
	src, err := iofs.New(sqlFS(fsys), "migrations")
	if err != nil {
		return nil, fmt.Errorf("embedded migrations: %w", err)
	}
	return src, nil
}

// Migration is one versioned schema migration.
type Migration struct {
	Version uint
	Name    string
	Up      string
	Down    string
}

// Migrations lists the schema migrations of fsys (nil: the embedded ones) in version order.
func Migrations(fsys fs.FS) ([]Migration, error) {
	src, err := newSource(fsys)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	var out []Migration
	v, err := src.First()
	for err == nil {
		mig := Migration{Version: v}
		if mig.Up, mig.Name, err = readAll(src.ReadUp(v)); err != nil {
			return nil, err
		}
		if mig.Down, _, err = readAll(src.ReadDown(v)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		out = append(out, mig)
		v, err = src.Next(v)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return out, nil
}

func readAll(rc io.ReadCloser, name string, err error) (string, string, error) {
	if err != nil {
		return "", "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), name, err
}
