package valkey

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/callargs"
	"github.com/spendcap/spendcap/internal/valkeynodes"
)

// The listing index (valkey/lua/025_storage.lua): sc:ix:ids and sc:ix:util on one server; on a
// cluster one pair per slot, sc:ix:{<tag>}:ids and :util, where <tag> names the slot.
const (
	indexPrefix = "sc:ix"
	// listScan is how many index entries one sc_list_budgets call examines at most, so that a
	// call with filters that few budgets match holds the server for about a millisecond, not
	// for the whole index.
	listScan = 1000
)

// slotTags are the three-character hash tags of the cluster slots, in slot order: for each slot
// the first string of tagAlphabet's characters, taken in order, whose CRC16 is that slot. The
// library holds the same table (SLOT_TAGS); a test checks that both agree.
var slotTags = sync.OnceValue(func() []string {
	const tagAlphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	tags := make([]string, 16384)
	for _, a := range tagAlphabet {
		for _, b := range tagAlphabet {
			for _, c := range tagAlphabet {
				t := string([]rune{a, b, c})
				if s := crc16(t) & 16383; tags[s] == "" {
					tags[s] = t
				}
			}
		}
	}
	return tags
})

// crc16 is the cluster's key hash (CRC-16/XMODEM).
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

type listingReply struct {
	Rows []struct {
		BudgetID              string           `json:"budget_id"`
		ParentID              *string          `json:"parent_id"`
		Mode                  string           `json:"mode"`
		ResetEvery            *string          `json:"reset_every"`
		WindowStart           *int64           `json:"window_start"`
		NextResetAt           *int64           `json:"next_reset_at"`
		HardLimits            map[string]int64 `json:"hard_limits"`
		SoftLimits            map[string]int64 `json:"soft_limits"`
		Usage                 map[string]int64 `json:"usage"`
		Reserved              map[string]int64 `json:"reserved"`
		AlertPercents         []int32          `json:"alert_percents"`
		UtilisationPermille   *int             `json:"utilisation_permille"`
		NearLimit             bool             `json:"near_limit"`
		WindowBreachCount     int64            `json:"window_breach_count"`
		WindowSoftBreachCount int64            `json:"window_soft_breach_count"`
		Children              int64            `json:"children"`
		Cursor                string           `json:"cursor"`
	} `json:"rows"`
	Next *string `json:"next"`
	Done bool    `json:"done"`
}

// ListBudgets implements spendcap.Lister with sc_list_budgets. On one server it reads the
// listing index from p.After, calling again while a call examined its limit of entries without
// filling the page. On a cluster it reads every slot's index that way (the slots a primary
// holds found by a SCAN of its index keys) and merges their pages in order.
func (c *Client) ListBudgets(ctx context.Context, p spendcap.ListBudgetsParams) (spendcap.BudgetPage, error) {
	maxRows, err := callargs.Count("max_rows", p.MaxRows)
	if err != nil {
		return spendcap.BudgetPage{}, err
	}
	want := int(cmp.Or(maxRows, callargs.DefaultListRows))
	a := args{}.str("id_prefix", p.IDPrefix).str("id_contains", p.IDContains).str("mode", string(p.Mode)).
		str("parent_id", p.ParentID).str("order_by", string(p.OrderBy)).num("max_rows", maxRows).at(p.At)
	a["scan"] = listScan
	for name, on := range map[string]bool{"roots_only": p.RootsOnly, "near_limit": p.NearLimit, "breached": p.Breached} {
		if on {
			a[name] = true
		}
	}
	prefixes := []string{indexPrefix}
	if _, cluster := c.rdb.(*redis.ClusterClient); cluster {
		if prefixes, err = c.slotIndexes(ctx); err != nil {
			return spendcap.BudgetPage{}, err
		}
		if len(prefixes) == 0 {
			// No budget anywhere: slot 0's empty index still checks the arguments.
			prefixes = []string{indexPrefix + ":{" + slotTags()[0] + "}"}
		}
	}
	var rows []spendcap.BudgetListing
	for _, ix := range prefixes {
		got, err := c.listIndex(ctx, ix, a, p.After, want)
		if err != nil {
			return spendcap.BudgetPage{}, err
		}
		rows = append(rows, got...)
	}
	if len(prefixes) > 1 {
		slices.SortFunc(rows, listingOrder(p.OrderBy == spendcap.ListByUtilisation))
		rows = rows[:min(len(rows), want)]
	}
	return spendcap.BudgetPage{Budgets: rows, Next: callargs.NextCursor(rows, int32(want))}, nil
}

// listIndex reads up to want rows from the listing index ix, after cursor after.
func (c *Client) listIndex(ctx context.Context, ix string, a args, after string, want int) ([]spendcap.BudgetListing, error) {
	var rows []spendcap.BudgetListing
	for {
		call := args{}
		for k, v := range a {
			call[k] = v
		}
		call.str("after", after)
		call["max_rows"] = want - len(rows)
		var r listingReply
		if err := c.callKeys(ctx, "list_budgets", []string{ix + ":ids", ix + ":util"}, call, false, &r); err != nil {
			return nil, err
		}
		for _, x := range r.Rows {
			rows = append(rows, spendcap.BudgetListing{BudgetID: x.BudgetID, ParentID: deref(x.ParentID), Mode: spendcap.Mode(x.Mode),
				ResetEvery: deref(x.ResetEvery), WindowStart: toTime(x.WindowStart), NextResetAt: toTimePtr(x.NextResetAt),
				HardLimits: orEmpty(x.HardLimits), SoftLimits: orEmpty(x.SoftLimits), Usage: orEmpty(x.Usage), Reserved: orEmpty(x.Reserved),
				AlertPercents: x.AlertPercents, UtilisationPermille: x.UtilisationPermille, NearLimit: x.NearLimit,
				WindowBreachCount: x.WindowBreachCount, WindowSoftBreachCount: x.WindowSoftBreachCount, Children: x.Children, Cursor: x.Cursor})
		}
		if r.Done || len(rows) >= want || r.Next == nil {
			return rows, nil
		}
		after = *r.Next
	}
}

// slotIndexes are the listing indexes of a cluster's slots that hold budgets, found by a SCAN of
// every primary for their ids sets.
func (c *Client) slotIndexes(ctx context.Context) ([]string, error) {
	keys, err := c.slotKeys(ctx, ":ids")
	for i, k := range keys {
		keys[i] = strings.TrimSuffix(k, ":ids")
	}
	return keys, err
}

// slotKeys are the keys of the slots' listing indexes that end with suffix (":ids" for budgets,
// ":q" for quota policies), sorted: a SCAN of every primary.
func (c *Client) slotKeys(ctx context.Context, suffix string) ([]string, error) {
	var mu sync.Mutex
	var out []string
	err := valkeynodes.ForEachPrimary(ctx, c.rdb, func(ctx context.Context, n *redis.Client) error {
		keys, err := scanKeys(ctx, n, indexPrefix+":{*}"+suffix, func(key string) (string, bool) {
			return key, strings.HasSuffix(key, suffix)
		})
		mu.Lock()
		out = append(out, keys...)
		mu.Unlock()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("valkey: listing indexes: %w", err)
	}
	slices.Sort(out)
	return out, nil
}

// listingOrder compares rows as list_budgets orders them: by id (bytes), or by utilisation,
// highest first and none last, then id.
func listingOrder(byUtilisation bool) func(a, b spendcap.BudgetListing) int {
	return func(a, b spendcap.BudgetListing) int {
		if byUtilisation {
			if c := cmp.Compare(utilisationKey(b), utilisationKey(a)); c != 0 {
				return c
			}
		}
		return strings.Compare(a.BudgetID, b.BudgetID)
	}
}

func utilisationKey(r spendcap.BudgetListing) int {
	if r.UtilisationPermille == nil {
		return -1
	}
	return *r.UtilisationPermille
}
