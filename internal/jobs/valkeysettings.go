package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spendcap/spendcap/valkey"
)

// settingsWatcher re-reads the Valkey settings valkey.NewClient checks at start (eviction policy,
// append-only file, fsync policy, version) every interval, exports them as
// spendcap_valkey_setting_ok{addr,setting} (1 fine, 0 a problem; no series for a setting the
// server would not show) and logs a warning when a problem appears and a note when it goes: a
// CONFIG SET made after the clients started, or a failover to a server set up otherwise, is seen.
type settingsWatcher struct {
	vk       *valkey.Client
	interval time.Duration
	ok       *prometheus.GaugeVec
	checked  prometheus.Gauge
	failures *prometheus.CounterVec
	log      *slog.Logger
	seen     map[[2]string]string // (addr, setting) -> the problem last logged
}

func newSettingsWatcher(reg *prometheus.Registry, vk *valkey.Client, interval time.Duration, failures *prometheus.CounterVec, log *slog.Logger) *settingsWatcher {
	w := &settingsWatcher{vk: vk, interval: interval, failures: failures, log: log.With("component", "valkey_settings"),
		seen: map[[2]string]string{},
		ok: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "spendcap_valkey_setting_ok",
			Help: "Whether a Valkey primary's setting keeps usage safe (1) or can lose it (0): maxmemory-policy, appendonly, appendfsync, version."},
			[]string{"addr", "setting"}),
		checked: prometheus.NewGauge(prometheus.GaugeOpts{Name: "spendcap_valkey_settings_checked_timestamp_seconds",
			Help: "When the Valkey settings were last read (Unix seconds)."}),
	}
	reg.MustRegister(w.ok, w.checked)
	return w
}

// run checks at once, then every interval, until ctx ends.
func (w *settingsWatcher) run(ctx context.Context) {
	for {
		w.check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(w.interval):
		}
	}
}

func (w *settingsWatcher) check(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	servers, err := w.vk.CheckSettings(cctx)
	if err != nil {
		if ctx.Err() == nil {
			w.failures.WithLabelValues("valkey_settings").Inc()
			w.log.Warn("cannot read the Valkey settings; trying again", "err", err, "in", w.interval)
		}
		return
	}
	w.ok.Reset()
	now := map[[2]string]string{}
	for _, s := range servers {
		values := map[string]string{"maxmemory-policy": s.MaxmemoryPolicy, "appendonly": s.Appendonly,
			"appendfsync": s.Appendfsync, "version": s.Version}
		for _, name := range valkey.Settings {
			problem, bad := s.Problems[name]
			if !bad && values[name] == "" {
				continue // not shown by this server
			}
			if bad {
				w.ok.WithLabelValues(s.Addr, name).Set(0)
				now[[2]string{s.Addr, name}] = problem
			} else {
				w.ok.WithLabelValues(s.Addr, name).Set(1)
			}
		}
	}
	for k, problem := range now {
		if w.seen[k] != problem {
			w.log.Warn(problem, "addr", k[0], "setting", k[1])
		}
	}
	for k := range w.seen {
		if _, still := now[k]; !still {
			w.log.Info("Valkey setting fixed", "addr", k[0], "setting", k[1])
		}
	}
	w.seen = now
	w.checked.SetToCurrentTime()
}
