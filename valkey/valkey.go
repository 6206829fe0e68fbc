// Package valkey is spendcap's Valkey backend: the Valkey Functions library spendcap.lua (built
// from the files of valkey/lua), which has the semantics of the PL/pgSQL functions, and Client,
// which implements spendcap.Budgets, spendcap.Quotas, spendcap.BatchReporter,
// spendcap.EventSource, spendcap.EventWatcher and spendcap.Operator on it with go-redis, on a
// single node or a Valkey Cluster. NewClient checks the server's settings and loads the library; Load
// and LibrarySource serve deploy pipelines (`migrate valkey-load`).
package valkey

import (
	"context"
	_ "embed" // the library source
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/errcode"
	"github.com/spendcap/spendcap/internal/valkeynodes"
)

//go:generate go run ../internal/cmd/lualib -dir lua -out spendcap.lua

// Library is the source of the Valkey Functions library (`#!lua name=spendcap`).
//
//go:embed spendcap.lua
var Library string

// LibraryName is the name the library registers.
const LibraryName = "spendcap"

// LibrarySettings are the library's own settings. Valkey has no roles, so what PostgreSQL decides
// by the caller's role is decided here once for the server, when the library is loaded.
type LibrarySettings struct {
	// AllowReplay lets every caller pass an at_ms later than the server clock plus 5 seconds
	// (log replays, tests). Without it such a call is refused with SC002: a future instant would
	// let any caller open a budget's next window early or end another holder's lease.
	AllowReplay bool
}

// The settings line of spendcap.lua, as Library has it and as AllowReplay writes it.
const (
	replayLine        = "local ALLOW_REPLAY = false\n"
	replayAllowedLine = "local ALLOW_REPLAY = true\n"
)

// LibrarySource returns the library's source with s written into its settings line: Library
// itself for the default settings.
func LibrarySource(s LibrarySettings) string {
	if !s.AllowReplay {
		return Library
	}
	return strings.Replace(Library, replayLine, replayAllowedLine, 1)
}

// Options configure NewClient.
type Options struct {
	// AllowEviction starts the client even when the server's maxmemory-policy could evict
	// budget keys (anything but noeviction). Evicted keys mean lost usage and forgotten dedup
	// keys: set it only when you have made sure memory never runs out.
	AllowEviction bool
	// AllowVolatile starts the client on a server that does not keep usage across a restart
	// (appendonly no), and silences the warning about an fsync policy other than always. Set it
	// for caches of usage you can afford to lose, and for test servers.
	AllowVolatile bool
	// AllowReplay loads the library with LibrarySettings.AllowReplay. Unused with SkipLoad.
	AllowReplay bool
	// SkipLoad leaves the library as it is on the server (loaded by `migrate valkey-load`).
	SkipLoad bool
	// MinReplicas makes every write wait, in the same round trip, until that many replicas have
	// it: the client sends WAIT MinReplicas ReplicaTimeout after the FCALL on the same
	// connection. A write that too few replicas confirmed in time returns its result together
	// with an error matching ErrNotReplicated, never as plain success. While the primary has
	// fewer replicas attached than MinReplicas (after a failover, until a replica attaches), writes
	// do not wait: they ask ROLE instead and return ErrNotReplicated at once. 0 (the default)
	// waits for none. See docs/operations.md, "Replicas and failover".
	MinReplicas int
	// ReplicaTimeout bounds that wait. Defaults to DefaultReplicaTimeout. Valkey times blocked
	// commands out at its hz (10 by default: every 100 ms), so a wait can last up to that much
	// longer.
	ReplicaTimeout time.Duration
	// Logger receives NewClient's warnings (a server older than MinServerVersion, an fsync policy that
	// can lose acknowledged usage), logged once per server and process; nil means slog.Default().
	Logger *slog.Logger
}

// ErrEvictionPolicy is returned by NewClient when the server could evict budget keys.
var ErrEvictionPolicy = errors.New("valkey: maxmemory-policy must be noeviction, or budget keys may be evicted (set Options.AllowEviction to start anyway)")

// ErrNotDurable is returned by NewClient when the server keeps no append-only file, so a restart loses
// every budget, its usage and the library itself.
var ErrNotDurable = errors.New("valkey: appendonly must be yes, or a restart loses every budget and its usage (set Options.AllowVolatile to start anyway)")

// Client implements spendcap.Budgets on Valkey.
type Client struct {
	rdb  redis.UniversalClient
	opts Options
	// repl is what writes wait for (MinReplicas); nil for none.
	repl *replication
	// recheck is set by an error that says the primary changed: the next write that succeeds
	// checks the settings of the primary it reached (replicas.go).
	recheck atomic.Bool
	// sets remembers the keys that calls to budget sets needed (sets.go).
	sets setCache
}

var _ spendcap.Budgets = (*Client)(nil)

func init() {
	valkeynodes.ConnOf = func(client any) redis.UniversalClient { return client.(*Client).rdb }
}

// NewClient checks every primary (its eviction policy and append-only file, refused unless opts allow
// them; its fsync policy and its version against MinServerVersion, warnings on opts.Logger),
// loads the library with opts' settings when the server's copy differs, and returns a Client. rdb may be a *redis.Client or a *redis.ClusterClient.
func NewClient(ctx context.Context, rdb redis.UniversalClient, opts Options) (*Client, error) {
	err := valkeynodes.ForEachPrimary(ctx, rdb, func(ctx context.Context, c *redis.Client) error {
		return checkServer(ctx, c, opts)
	})
	if err != nil {
		return nil, err
	}
	if !opts.SkipLoad {
		if _, err := Load(ctx, rdb, LibrarySettings{AllowReplay: opts.AllowReplay}); err != nil {
			return nil, err
		}
	}
	if opts.MinReplicas < 0 {
		return nil, fmt.Errorf("valkey: Options.MinReplicas must be 0 or more, got %d", opts.MinReplicas)
	}
	c := &Client{rdb: rdb, opts: opts}
	if opts.MinReplicas > 0 {
		c.repl = &replication{wanted: opts.MinReplicas, timeout: opts.ReplicaTimeout}
		if c.repl.timeout <= 0 {
			c.repl.timeout = DefaultReplicaTimeout
		}
	}
	return c, nil
}

// Load puts the library with settings s (LibrarySource) on every primary whose copy differs
// (FUNCTION LOAD REPLACE) and reports on how many it did. A server holds one copy: loading other
// settings replaces the previous ones for every client of that server.
func Load(ctx context.Context, rdb redis.UniversalClient, s LibrarySettings) (int, error) {
	source := LibrarySource(s)
	loaded := 0
	err := valkeynodes.ForEachPrimary(ctx, rdb, func(ctx context.Context, c *redis.Client) error {
		libs, err := c.FunctionList(ctx, redis.FunctionListQuery{LibraryNamePattern: LibraryName, WithCode: true}).Result()
		if err != nil {
			return fmt.Errorf("valkey: FUNCTION LIST: %w", err)
		}
		for _, l := range libs {
			if l.Name == LibraryName && l.Code == source {
				return nil
			}
		}
		if err := c.FunctionLoadReplace(ctx, source).Err(); err != nil {
			return fmt.Errorf("valkey: FUNCTION LOAD REPLACE: %w", err)
		}
		loaded++
		if err := indexBudgets(ctx, c); err != nil {
			return err
		}
		return indexPolicies(ctx, c)
	})
	return loaded, err
}

// indexPolicies puts the quota policies of node n that a version before their listing index
// created into it (sc_index_policy, which leaves anything that is not a policy alone): a SCAN of
// the node's string keys under sc:q:{ and one FCALL per key, pipelined, each time the library
// changes.
func indexPolicies(ctx context.Context, n *redis.Client) error {
	var keys []string
	it := n.ScanType(ctx, 0, "sc:q:{*", 1000, "string").Iterator()
	for it.Next(ctx) {
		keys = append(keys, it.Val())
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("valkey: policy listing index: %w", err)
	}
	return fcallEach(ctx, n, "sc_index_policy", keys, auditBatch, func(int) ([]byte, error) { return []byte("{}"), nil },
		func(cmd *redis.Cmd) error {
			if err := cmd.Err(); err != nil {
				return fmt.Errorf("valkey: sc_index_policy: %w", mapError(err))
			}
			return nil
		})
}

// indexBudgets puts the budgets of node n that a version before the listing index stored into
// it (sc_index_budget; an indexed budget is left alone): a SCAN of the node and one FCALL per
// budget, pipelined, each time the library changes.
func indexBudgets(ctx context.Context, n *redis.Client) error {
	bases, err := scanKeys(ctx, n, "sc:{*", func(k string) (string, bool) {
		b := auditBase(k)
		return b, b == k
	})
	if err != nil {
		return fmt.Errorf("valkey: listing index: %w", err)
	}
	return fcallEach(ctx, n, "sc_index_budget", bases, auditBatch, func(int) ([]byte, error) { return []byte("{}"), nil },
		func(cmd *redis.Cmd) error {
			if err := cmd.Err(); err != nil {
				return fmt.Errorf("valkey: sc_index_budget: %w", mapError(err))
			}
			return nil
		})
}

// Key returns the base key of a budget (docs/semantics.md#valkey): sc:{id}, or sc:{g}/rest for an
// id g/rest, so that budgets sharing the first segment of their ids share a cluster slot.
func Key(budgetID string) string { return baseKey("sc:", budgetID) }

// baseKey is the library's base_of (valkey/lua/000_library.lua): the hash tag is the id up to its
// first '/', or the whole id when it has none after its first byte (an empty tag is no tag).
func baseKey(prefix, id string) string {
	if len(id) > 1 {
		if i := strings.IndexByte(id[1:], '/'); i >= 0 {
			return prefix + "{" + id[:i+1] + "}" + id[i+1:]
		}
	}
	return prefix + "{" + id + "}"
}

// call runs FCALL sc_<name> on the budget's key and decodes the JSON reply into out.
func (c *Client) call(ctx context.Context, name, budgetID string, a args, readonly bool, out any) error {
	return c.callKey(ctx, name, Key(budgetID), a, readonly, out)
}

func (c *Client) callKey(ctx context.Context, name, key string, a args, readonly bool, out any) error {
	return c.callKeys(ctx, name, []string{key}, a, readonly, out)
}

// callKeys runs FCALL sc_<name> with every key the call touches (the first is the base key of the
// budget or policy it names) and decodes the JSON reply into out. a is args, or rawArgs. A write
// that too few replicas confirmed fills out and returns a *ReplicationError.
func (c *Client) callKeys(ctx context.Context, name string, keys []string, a any, readonly bool, out any) error {
	payload, err := encodeArgs(a)
	if err != nil {
		return err
	}
	cmd, replErr := c.fcall(ctx, "sc_"+name, keys, readonly, payload)
	reply, err := cmd.Text()
	if err != nil {
		return mapError(err)
	}
	if f, ok := out.(fastDecoder); ok && f.decodeFast(reply) {
		return replErr
	}
	if err := json.Unmarshal([]byte(reply), out); err != nil {
		return err
	}
	return replErr
}

// fastDecoder is a reply that reads its most common form without encoding/json.
type fastDecoder interface {
	// decodeFast sets the reply from s and says true, or says false when s is not that form.
	decodeFast(s string) bool
}

// rawArgs are a call's arguments already encoded as JSON.
type rawArgs []byte

// encodeArgs encodes a call's arguments: args as JSON, rawArgs as they are.
func encodeArgs(a any) ([]byte, error) {
	if r, ok := a.(rawArgs); ok {
		return r, nil
	}
	return json.Marshal(a)
}

// mapError turns an error reply that starts with a spendcap error code into a *spendcap.Error.
func mapError(err error) error {
	var rerr redis.Error
	if errors.As(err, &rerr) {
		code, msg, _ := strings.Cut(rerr.Error(), " ")
		if errcode.Known(code) {
			return &spendcap.Error{Code: code, Message: msg, Cause: err}
		}
	}
	return err
}

// args collects the JSON arguments of a call, leaving out unset optional ones.
type args map[string]any

func (a args) str(name, v string) args {
	if v != "" {
		a[name] = v
	}
	return a
}

func (a args) num(name string, v int32) args {
	if v != 0 {
		a[name] = v
	}
	return a
}

func (a args) obj(name string, v map[string]int64) args {
	if v != nil {
		a[name] = v
	}
	return a
}

func (a args) at(t time.Time) args {
	if !t.IsZero() {
		a["at_ms"] = t.UnixMilli()
	}
	return a
}

func orEmpty(m map[string]int64) map[string]int64 {
	if m == nil {
		return map[string]int64{}
	}
	return m
}

func toTime(v *int64) time.Time {
	if v == nil {
		return time.Time{}
	}
	return time.UnixMilli(*v).UTC()
}

func toTimePtr(v *int64) *time.Time {
	if v == nil {
		return nil
	}
	t := time.UnixMilli(*v).UTC()
	return &t
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
