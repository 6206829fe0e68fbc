package valkey

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap/internal/valkeynodes"
)

// MinServerVersion is the oldest valkey-server spendcap supports in production. Earlier 8.0
// releases run the library correctly but predate security fixes to the Lua engine that 8.0.6
// brings; NewClient and `migrate valkey-load` warn on them rather than refuse, since test and dev
// machines often have only their distribution's 8.0.1.
const MinServerVersion = "8.0.6"

// checkServer checks one primary before the client uses it: the eviction policy (an error unless
// opts.AllowEviction), the append-only file (an error, or a warning for an fsync policy that can
// lose acknowledged usage, unless opts.AllowVolatile) and the server version (a warning).
func checkServer(ctx context.Context, c *redis.Client, opts Options) error {
	// The version first: its warning is worth having even when a setting below is refused.
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return fmt.Errorf("valkey: INFO server: %w", err)
	}
	warnOnce(c, opts, versionWarning(info), "min_version", MinServerVersion)
	if !opts.AllowEviction {
		if err := checkEviction(ctx, c); err != nil {
			return err
		}
	}
	if !opts.AllowVolatile {
		warning, err := checkDurability(ctx, c)
		if err != nil {
			return err
		}
		warnOnce(c, opts, warning, "want", "appendfsync always")
	}
	return nil
}

// warnOnce logs a non-empty warning once per server and process: a service that opens a client
// per tenant or per request should not repeat it in every log line.
func warnOnce(c *redis.Client, opts Options, warning string, attrs ...any) {
	if warning == "" {
		return
	}
	if _, seen := warned.LoadOrStore(c.Options().Addr+" "+warning, true); !seen {
		opts.logger().Warn(warning, append([]any{"addr", c.Options().Addr}, attrs...)...)
	}
}

// warned holds the server warnings this process has logged.
var warned sync.Map

func checkEviction(ctx context.Context, c *redis.Client) error {
	cfg, err := c.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		return fmt.Errorf("valkey: cannot read maxmemory-policy (%v); set Options.AllowEviction if you checked it yourself", err)
	}
	return evictionProblem(cfg["maxmemory-policy"], c.Options().Addr)
}

// evictionProblem is checkEviction's decision for the policy.
func evictionProblem(policy, addr string) error {
	if policy != "noeviction" {
		return fmt.Errorf("%w (it is %s on %s)", ErrEvictionPolicy, policy, addr)
	}
	return nil
}

// checkDurability reads appendonly and appendfsync (docs/operations.md#durability): no append-only
// file is an error; an fsync policy other than always is a warning, since it acknowledges usage
// that a crash can still lose.
func checkDurability(ctx context.Context, c *redis.Client) (string, error) {
	cfg, err := c.ConfigGet(ctx, "append*").Result()
	if err != nil {
		return "", fmt.Errorf("valkey: cannot read appendonly (%v); set Options.AllowVolatile if you checked it yourself", err)
	}
	return durabilityProblem(cfg["appendonly"], cfg["appendfsync"], c.Options().Addr)
}

// durabilityProblem is checkDurability's decision for the two settings.
func durabilityProblem(appendonly, appendfsync, addr string) (string, error) {
	if appendonly != "yes" {
		return "", fmt.Errorf("%w (it is %q on %s)", ErrNotDurable, appendonly, addr)
	}
	switch appendfsync {
	case "always":
		return "", nil
	case "everysec":
		return "valkey: appendfsync everysec acknowledges usage before it is on disk: a crash of the machine " +
			"(and, rarely, of the process) loses up to about a second of it; appendfsync always loses none", nil
	default:
		return fmt.Sprintf("valkey: appendfsync %s leaves flushing to the operating system: a crash of the machine "+
			"loses up to about 30 seconds of acknowledged usage; appendfsync always loses none", appendfsync), nil
	}
}

// versionWarning reads INFO server and says what is wrong with the version, or "" when nothing is.
func versionWarning(info string) string {
	fields := infoFields(info)
	v, ok := fields["valkey_version"]
	if !ok {
		return fmt.Sprintf("valkey: the server is not Valkey (redis_version %s): spendcap supports valkey-server %s or later",
			fields["redis_version"], MinServerVersion)
	}
	if versionLess(v, MinServerVersion) {
		return fmt.Sprintf("valkey: valkey-server %s is older than %s, the minimum for production (Lua engine security fixes)", v, MinServerVersion)
	}
	return ""
}

// infoFields parses the "name:value" lines of an INFO reply.
func infoFields(info string) map[string]string {
	fields := map[string]string{}
	for _, line := range strings.Split(info, "\n") {
		if name, value, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && !strings.HasPrefix(name, "#") {
			fields[name] = value
		}
	}
	return fields
}

// versionLess compares dotted versions numerically ("8.0.10" is newer than "8.0.6"); a part that
// is not a number counts as 0.
func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(pa), len(pb)); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

func (o Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}

// ServerSettings are the settings NewClient checks, as CheckSettings read them on one primary.
type ServerSettings struct {
	// Addr is the primary's host:port.
	Addr string
	// Version is valkey_version from INFO server ("" for a server that is not Valkey).
	Version string
	// MaxmemoryPolicy, Appendonly and Appendfsync are the CONFIG values ("" when CONFIG GET is
	// refused, as some managed services do).
	MaxmemoryPolicy, Appendonly, Appendfsync string
	// Problems maps each setting that can lose or corrupt usage (maxmemory-policy, appendonly,
	// appendfsync, version) to what is wrong with it; a setting that is fine, or could not be
	// read, has no entry.
	Problems map[string]string
}

// Settings names the settings CheckSettings judges, in the order it reports them.
var Settings = []string{"maxmemory-policy", "appendonly", "appendfsync", "version"}

// CheckSettings reads, on every primary, the settings NewClient checks at start (eviction policy,
// append-only file, fsync policy, version) and says what is wrong with each as NewClient would, whatever
// Options the client was made with: a long-running process calls it on an interval, so that a
// CONFIG SET made after start, or a failover to a server set up otherwise, is seen.
func (c *Client) CheckSettings(ctx context.Context) ([]ServerSettings, error) {
	var mu sync.Mutex
	var out []ServerSettings
	err := valkeynodes.ForEachPrimary(ctx, c.rdb, func(ctx context.Context, n *redis.Client) error {
		s, err := readSettings(ctx, n)
		if err != nil {
			return err
		}
		mu.Lock()
		out = append(out, s)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr < out[j].Addr })
	return out, nil
}

// readSettings reads and judges one primary's settings with NewClient's rules.
func readSettings(ctx context.Context, c *redis.Client) (ServerSettings, error) {
	s := ServerSettings{Addr: c.Options().Addr, Problems: map[string]string{}}
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return s, fmt.Errorf("valkey: INFO server: %w", err)
	}
	s.Version = infoFields(info)["valkey_version"]
	if w := versionWarning(info); w != "" {
		s.Problems["version"] = w
	}
	if cfg, err := c.ConfigGet(ctx, "maxmemory-policy").Result(); err == nil {
		s.MaxmemoryPolicy = cfg["maxmemory-policy"]
		if err := evictionProblem(s.MaxmemoryPolicy, s.Addr); err != nil {
			s.Problems["maxmemory-policy"] = err.Error()
		}
	}
	if cfg, err := c.ConfigGet(ctx, "append*").Result(); err == nil {
		s.Appendonly, s.Appendfsync = cfg["appendonly"], cfg["appendfsync"]
		warning, err := durabilityProblem(s.Appendonly, s.Appendfsync, s.Addr)
		switch {
		case err != nil:
			s.Problems["appendonly"] = err.Error()
		case warning != "":
			s.Problems["appendfsync"] = warning
		}
	}
	return s, nil
}
