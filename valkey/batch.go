package valkey

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/batching"
	"github.com/spendcap/spendcap/internal/callargs"
)

var _ spendcap.BatchReporter = (*Client)(nil)

// A Batcher on a Client partitions its reports by batchPartition.
func init() {
	batching.Register(func(backend any) (batching.Partitioner, bool) {
		if c, ok := backend.(*Client); ok {
			return c.batchPartition, true
		}
		return nil, false
	})
}

// byItemSep starts the part of a batch's missing-keys reply that says which item lacked which
// budgets (valkey/lua/205_report_usage_batch.lua).
const byItemSep = "; by item "

// ReportUsageBatch implements spendcap.BatchReporter: one FCALL sc_report_usage_batch with the keys
// of every item's set (learned as ReportUsage learns them) and one argument per item. On a
// cluster every key must hash to one slot (a Batcher partitions its reports so): else SC002, with nothing written.
func (c *Client) ReportUsageBatch(ctx context.Context, p spendcap.ReportUsageBatchParams) ([]spendcap.BatchResult, error) {
	if len(p.Items) < 1 || len(p.Items) > spendcap.MaxBatchItems {
		return nil, &spendcap.Error{Code: spendcap.CodeInvalidArgument, Message: "items: must be a JSON array of 1..1000 objects"}
	}
	argv := make([]any, 1+len(p.Items))
	head, err := json.Marshal(args{}.at(p.At))
	if err != nil {
		return nil, err
	}
	argv[0] = head
	named := make([][]string, len(p.Items))
	cacheKeys := make([]string, len(p.Items))
	for i, it := range p.Items {
		if q := quickReportArgs(spendcap.ReportUsageParams{BudgetID: it.BudgetID, Deltas: it.Deltas,
			DedupKey: it.DedupKey, AlsoCharge: it.AlsoCharge}); q != nil {
			argv[i+1] = []byte(q)
		} else {
			a := args{"budget_id": it.BudgetID, "deltas": orEmpty(it.Deltas)}.str("dedup_key", it.DedupKey)
			if len(it.AlsoCharge) > 0 {
				a["also_charge"] = it.AlsoCharge
			}
			if argv[i+1], err = json.Marshal(a); err != nil {
				return nil, err
			}
		}
		named[i], cacheKeys[i] = []string{it.BudgetID}, it.BudgetID
		if len(it.AlsoCharge) > 0 {
			named[i] = append(named[i], it.AlsoCharge...)
			cacheKeys[i] = strings.Join(named[i], " ")
		}
	}
	learned := make([][]string, len(p.Items))
	for i := range p.Items {
		learned[i] = c.sets.get(cacheKeys[i])
	}
	for try := 1; ; try++ {
		keys, seen := make([]string, 0, len(p.Items)), map[string]bool{}
		for i := range p.Items {
			for _, k := range setKeys(named[i], learned[i]) {
				if !seen[k] {
					seen[k] = true
					keys = append(keys, k)
				}
			}
		}
		if _, cluster := c.rdb.(*redis.ClusterClient); cluster {
			if err := oneSlot(keys); err != nil {
				return nil, err
			}
		}
		cmd, replErr := c.fcall(ctx, "sc_report_usage_batch", keys, false, argv...)
		reply, err := cmd.Text()
		if err == nil {
			res, err := batchResults(reply, len(p.Items))
			if err != nil {
				return nil, err
			}
			return res, replErr
		}
		err = mapError(err)
		more, ok := batchMissingKeys(err)
		if !ok || try == setRetries {
			return nil, err
		}
		for i, ids := range more {
			if i >= 0 && i < len(learned) {
				learned[i] = union(learned[i], ids)
				c.sets.put(cacheKeys[i], learned[i])
			}
		}
	}
}

// batchPartition is the partition of a Batcher's reports on budgetID: on a cluster, the hash tag
// of the budget's key (its cluster slot), so that every batch fits one slot; on a single node, "".
func (c *Client) batchPartition(budgetID string) string {
	if _, cluster := c.rdb.(*redis.ClusterClient); !cluster {
		return ""
	}
	return hashTag(Key(budgetID))
}

// hashTag is the part of key between its first '{' and the next '}'.
func hashTag(key string) string {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return key
	}
	end := strings.IndexByte(key[open+1:], '}')
	if end <= 0 {
		return key
	}
	return key[open+1 : open+1+end]
}

// oneSlot refuses keys of different hash tags (a cluster would answer CROSSSLOT).
func oneSlot(keys []string) error {
	for _, k := range keys[1:] {
		if hashTag(k) != hashTag(keys[0]) {
			return &spendcap.Error{Code: spendcap.CodeInvalidArgument, Message: fmt.Sprintf(
				"items: on a cluster a batch must fit one slot, and %s and %s do not share one", keys[0], k)}
		}
	}
	return nil
}

// batchMissingKeys reads, from a batch's missing-keys reply, the budgets each item lacked.
func batchMissingKeys(err error) (map[int][]string, bool) {
	var e *spendcap.Error
	if _, ok := missingKeys(err); !ok || !errors.As(err, &e) {
		return nil, false
	}
	_, part, found := strings.Cut(e.Message, byItemSep)
	if !found {
		return nil, false
	}
	var byItem map[string][]string
	if json.Unmarshal([]byte(part), &byItem) != nil {
		return nil, false
	}
	out := make(map[int][]string, len(byItem))
	for k, ids := range byItem {
		i, err := strconv.Atoi(k)
		if err != nil {
			return nil, false
		}
		out[i] = ids
	}
	return out, true
}

// batchReply is one item of sc_report_usage_batch's answer: an outcome, or an error.
type batchReply struct {
	outcomeReply
	ErrorCode    *string `json:"error_code"`
	ErrorMessage string  `json:"error_message"`
}

// batchResults reads sc_report_usage_batch's answer for n items.
func batchResults(reply string, n int) ([]spendcap.BatchResult, error) {
	if out, ok := decodeFastBatch(reply, n); ok {
		return out, nil
	}
	var rs []batchReply
	if err := json.Unmarshal([]byte(reply), &rs); err != nil {
		return nil, err
	}
	if len(rs) != n {
		return nil, fmt.Errorf("sc_report_usage_batch: %d results for %d items", len(rs), n)
	}
	out := make([]spendcap.BatchResult, n)
	for i, r := range rs {
		if r.ErrorCode != nil {
			out[i].Err = callargs.BatchItemError("sc_report_usage_batch", i, *r.ErrorCode, r.ErrorMessage)
			continue
		}
		out[i].Outcome = r.outcome()
	}
	return out, nil
}
