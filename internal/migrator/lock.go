package migrator

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// withLock runs fn holding the deploy lock on a dedicated connection.
func (m *Migrator) withLock(ctx context.Context, fn func(conn *pgx.Conn) error) error {
	conn, err := m.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	deadline := time.Now().Add(m.opts.LockTimeout)
	logged := false
	for {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, LockKey).Scan(&ok); err != nil {
			if ctx.Err() != nil {
				return ErrInterrupted
			}
			return fmt.Errorf("deploy lock: %w", err)
		}
		if ok {
			break
		}
		if !logged {
			m.opts.Logger.Info("waiting for the deploy lock held by another migrate", "timeout", m.opts.LockTimeout)
			logged = true
		}
		if time.Now().After(deadline) {
			return ErrLockTimeout
		}
		select {
		case <-ctx.Done():
			return ErrInterrupted
		case <-time.After(100 * time.Millisecond):
		}
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, LockKey)
	}()
	return fn(conn)
}
