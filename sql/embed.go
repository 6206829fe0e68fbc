// Package sql embeds spendcap's SQL: the versioned schema migrations (migrations/, golang-migrate
// format), the PL/pgSQL API (functions/, re-applied with the migrations whenever a file changes)
// and the list of releases (releases.txt).
package sql

import "embed"

// FS holds migrations/*.sql, functions/*.sql and releases.txt.
//
//go:embed migrations/*.sql functions/*.sql releases.txt
var FS embed.FS
