package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/riverqueue/river"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/pgfn"
)

// DeliveryQueue is the River queue of webhook deliveries, apart from the rolls and purges so that
// slow receivers never hold them up.
const DeliveryQueue = "spendcap_webhooks"

// deliveryMaxAttempts is how many times a delivery is tried: with retries at most an hour apart,
// more than a year, so in practice until a 2xx or until its webhook is deleted.
const deliveryMaxAttempts = 10000

// maxBackoff bounds the wait between two attempts of a delivery.
const maxBackoff = time.Hour

// DeliverArgs is the delivery of one event to one webhook. It holds the event itself, so the
// delivery needs nothing else that purge_expired may delete, and every attempt posts the same
// bytes.
type DeliverArgs struct {
	URL   string         `json:"url"`
	Event spendcap.Event `json:"event"`
}

// Kind implements river.JobArgs.
func (DeliverArgs) Kind() string { return "spendcap_deliver_event" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (DeliverArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: DeliveryQueue, MaxAttempts: deliveryMaxAttempts}
}

type deliverWorker struct {
	river.WorkerDefaults[DeliverArgs]
	q       *pgfn.Queries
	http    *http.Client
	timeout time.Duration
	m       *metrics
	log     *slog.Logger
}

// Timeout bounds one attempt: the request's own timeout, and time to read the secret.
func (w *deliverWorker) Timeout(*river.Job[DeliverArgs]) time.Duration {
	return w.timeout + 5*time.Second
}

// NextRetry backs off exponentially from 1s, at most maxBackoff, with 10% jitter so that the
// deliveries of one burst of events do not retry in step.
func (w *deliverWorker) NextRetry(job *river.Job[DeliverArgs]) time.Time {
	return time.Now().Add(backoff(job.Attempt))
}

func backoff(attempt int) time.Duration {
	d := maxBackoff
	if attempt >= 1 && attempt <= 12 {
		d = min(time.Duration(1<<(attempt-1))*time.Second, maxBackoff)
	}
	return d + time.Duration(rand.Int64N(int64(d)/10+1))
}

// errWebhookDeleted cancels the deliveries of a webhook that is gone.
var errWebhookDeleted = errors.New("webhook deleted")

// Work posts the event, signed with the webhook's current secret, and succeeds on a 2xx.
func (w *deliverWorker) Work(ctx context.Context, job *river.Job[DeliverArgs]) error {
	a := job.Args
	s, err := w.q.WebhookSecret(ctx, pgfn.WebhookSecretParams{URL: a.URL})
	if err != nil {
		return fmt.Errorf("webhook secret: %w", err)
	}
	if s.Secret == nil {
		w.m.deliveries.WithLabelValues("cancelled").Inc()
		w.log.Info("webhook deleted: delivery cancelled", "url", a.URL, "source", a.Event.Source, "event_id", a.Event.EventID)
		return river.JobCancel(errWebhookDeleted)
	}
	body, err := json.Marshal(a.Event)
	if err != nil {
		return river.JobCancel(err)
	}
	rctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, a.URL, bytes.NewReader(body))
	if err != nil {
		return river.JobCancel(fmt.Errorf("webhook url: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "spendcap-jobs")
	req.Header.Set(spendcap.SignatureHeader, spendcap.SignWebhook(*s.Secret, body))
	req.Header.Set("Spendcap-Event", a.Event.Source+"/"+strconv.FormatInt(a.Event.EventID, 10))
	resp, err := w.http.Do(req)
	if err != nil {
		w.m.deliveries.WithLabelValues("failed").Inc()
		w.log.Warn("webhook delivery failed; retrying", "url", a.URL, "event_id", a.Event.EventID, "attempt", job.Attempt, "err", err)
		return err
	}
	// Read a little of the answer so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		w.m.deliveries.WithLabelValues("failed").Inc()
		w.log.Warn("webhook answered an error; retrying", "url", a.URL, "event_id", a.Event.EventID, "attempt", job.Attempt, "status", resp.StatusCode)
		return fmt.Errorf("webhook %s answered %s", a.URL, resp.Status)
	}
	w.m.deliveries.WithLabelValues("delivered").Inc()
	return nil
}
