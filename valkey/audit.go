package valkey

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/valkeynodes"
)

// auditBatch is how many base keys one pipeline audits.
const auditBatch = 500

// budgetSubkeys and policySubkeys are the kinds of subkey whose base key the audit checks (a
// subkey of a base key that is gone is an orphan). Dedup keys and event streams are left out: the
// first expire on their own, the second are a log that outlives its budgets.
var (
	budgetSubkeys = map[string]bool{"r": true, "l": true, "ls": true, "h": true, "tz": true}
	policySubkeys = map[string]bool{"l": true, "w": true, "n": true}
)

// auditBase is the base key that key belongs to, or "" for a key the audit does not check.
func auditBase(key string) string {
	prefix := "sc:{"
	subkeys := budgetSubkeys
	if strings.HasPrefix(key, "sc:q:{") {
		prefix, subkeys = "sc:q:{", policySubkeys
	} else if !strings.HasPrefix(key, prefix) {
		return ""
	}
	tag, rest, ok := strings.Cut(key[len(prefix):], "}")
	if !ok || tag == "" {
		return ""
	}
	kindRest, sub := strings.CutPrefix(rest, ":")
	if !sub {
		return key // the base key itself
	}
	kind, tail := kindRest, ""
	if i := strings.IndexAny(kindRest, "/:"); i >= 0 {
		kind, tail = kindRest[:i], kindRest[i:]
	}
	if !subkeys[kind] || strings.HasPrefix(tail, ":") {
		return ""
	}
	return prefix + tag + "}" + tail
}

// Audit runs sc_audit on every budget and quota policy of the deployment, and on the keys of
// those that are gone: it SCANs every primary for spendcap's keys, then audits each base key in
// an FCALL of its own (pipelined), so one key's audit is atomic and none holds the server long.
// With p.Repair, each FCALL corrects what it finds. Findings come sorted by budget, then policy.
func (c *Client) Audit(ctx context.Context, p spendcap.AuditParams) ([]spendcap.AuditFinding, error) {
	var mu sync.Mutex
	var out []spendcap.AuditFinding
	payload, err := json.Marshal(map[string]bool{"repair": p.Repair})
	if err != nil {
		return nil, err
	}
	err = valkeynodes.ForEachPrimary(ctx, c.rdb, func(ctx context.Context, n *redis.Client) error {
		bases, err := scanKeys(ctx, n, "sc:*", func(k string) (string, bool) {
			b := auditBase(k)
			return b, b != ""
		})
		if err != nil {
			return err
		}
		return fcallEach(ctx, n, "sc_audit", bases, auditBatch, func(int) ([]byte, error) { return payload, nil },
			func(cmd *redis.Cmd) error {
				s, err := cmd.Text()
				if err != nil {
					return fmt.Errorf("sc_audit: %w", mapError(err))
				}
				var fs []auditReply
				if err := json.Unmarshal([]byte(s), &fs); err != nil {
					return fmt.Errorf("sc_audit reply: %w", err)
				}
				mu.Lock()
				defer mu.Unlock()
				for _, f := range fs {
					out = append(out, spendcap.AuditFinding{BudgetID: f.BudgetID, PolicyID: f.PolicyID, Check: spendcap.AuditCheck(f.CheckName),
						Dimension: f.Dimension, Expected: f.Expected, Found: f.Found, Repaired: f.Repaired})
				}
				return nil
			})
	})
	if err != nil {
		return nil, fmt.Errorf("valkey: audit: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if (a.BudgetID == "") != (b.BudgetID == "") {
			return a.BudgetID != ""
		}
		if a.BudgetID+a.PolicyID != b.BudgetID+b.PolicyID {
			return a.BudgetID+a.PolicyID < b.BudgetID+b.PolicyID
		}
		return string(a.Check)+"/"+a.Dimension < string(b.Check)+"/"+b.Dimension
	})
	return out, nil
}

type auditReply struct {
	BudgetID  string          `json:"budget_id"`
	PolicyID  string          `json:"policy_id"`
	CheckName string          `json:"check_name"`
	Dimension string          `json:"dimension"`
	Expected  json.RawMessage `json:"expected"`
	Found     json.RawMessage `json:"found"`
	Repaired  bool            `json:"repaired"`
}
