// Package sql embeds spendcap's SQL: the versioned schema migrations (migrations/, golang-migrate
// format) and the PL/pgSQL API (functions/, re-applied after the migrations whenever a file changes).
package sql

import "embed"

// FS holds migrations/*.sql and functions/*.sql.
//
//go:embed migrations/*.sql functions/*.sql
var FS embed.FS
