package spendcap_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"

	"github.com/spendcap/spendcap"
)

// webhookReceiver is a complete endpoint for the jobs worker's webhook deliveries: it checks the
// signature on the raw body, decodes the event, and hands each event to handle once, although
// the worker delivers at least once (a retry after a lost answer posts the same bytes again).
func webhookReceiver(secret string, handle func(spendcap.Event) error) http.Handler {
	var mu sync.Mutex
	done := map[string]bool{} // in production, a table with a unique key on (source, event_id)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		// Verify before decoding: the signature is of these exact bytes.
		if !spendcap.VerifyWebhook(secret, body, r.Header.Get(spendcap.SignatureHeader)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var e spendcap.Event
		if err := json.Unmarshal(body, &e); err != nil {
			http.Error(w, "not an event", http.StatusBadRequest)
			return
		}
		key := e.Source + "/" + strconv.FormatInt(e.EventID, 10) // also in the Spendcap-Event header
		mu.Lock()
		defer mu.Unlock()
		if !done[key] {
			if err := handle(e); err != nil {
				// Any answer but a 2xx makes the worker try again later, with backoff.
				http.Error(w, "try again", http.StatusServiceUnavailable)
				return
			}
			done[key] = true
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// A webhook receiver verifies each request's signature and handles each event once. Here the
// requests the worker would send are made by hand: a delivery, its retry, and a forgery.
func ExampleVerifyWebhook() {
	const secret = "whsec-3f9a1c2e7b5d4a60"
	receiver := httptest.NewServer(webhookReceiver(secret, func(e spendcap.Event) error {
		fmt.Printf("%s: %s of %s reached %d%% (%d of %d %s)\n",
			e.Source, e.Kind, e.BudgetID, e.Percent, e.Usage, e.LimitValue, e.Dimension)
		return nil
	}))
	defer receiver.Close()

	at := time.Date(2026, 3, 10, 12, 10, 0, 0, time.UTC)
	body, _ := json.Marshal(spendcap.Event{Source: spendcap.SourcePostgres, EventID: 7, BudgetID: "team-e",
		Kind: spendcap.EventThreshold, WindowSeq: 1, WindowStart: at.Truncate(24 * time.Hour),
		Dimension: "tokens", Percent: 80, Usage: 85, LimitValue: 100, OccurredAt: at})
	post := func(body []byte, signature string) {
		req, _ := http.NewRequest(http.MethodPost, receiver.URL, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(spendcap.SignatureHeader, signature)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Println(resp.StatusCode)
	}
	post(body, spendcap.SignWebhook(secret, body)) // a delivery
	post(body, spendcap.SignWebhook(secret, body)) // its retry: acknowledged, not handled again
	forged := bytes.Replace(body, []byte(`"usage":85`), []byte(`"usage":8`), 1)
	post(forged, spendcap.SignWebhook(secret, body)) // a changed body under the old signature
	// Output:
	// postgres: threshold of team-e reached 80% (85 of 100 tokens)
	// 204
	// 204
	// 401
}
