package migrator

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

func (m *Migrator) riverMigrator(ctx context.Context) (*rivermigrate.Migrator[pgx.Tx], *pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(m.connString)
	if err != nil {
		return nil, nil, fmt.Errorf("database url: %w", err)
	}
	pcfg.ConnConfig = m.connConfig.Copy()
	pcfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	rm, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: m.opts.Logger.With("component", "river")})
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return rm, pool, nil
}

func (m *Migrator) upRiver(ctx context.Context, res *RiverChange) error {
	rm, pool, err := m.riverMigrator(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	out, err := rm.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	for _, v := range out.Versions {
		res.Applied = append(res.Applied, v.Version)
	}
	if len(res.Applied) > 0 {
		m.opts.Logger.Info("river migrated", "component", "river", "applied", res.Applied)
	}
	return nil
}
