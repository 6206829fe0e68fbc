package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/spendcap/spendcap"
)

// Admin is what the admin actions call: either client, on a connection whose role may change
// budgets (spendcap_admin on PostgreSQL).
type Admin interface {
	SetLimits(ctx context.Context, p spendcap.SetLimitsParams) (spendcap.Status, error)
	ResetBudget(ctx context.Context, p spendcap.ResetBudgetParams) (spendcap.Window, error)
	CancelReservation(ctx context.Context, p spendcap.CancelReservationParams) (map[string]int64, error)
}

// The admin actions, as forms name them and the log records them.
const (
	actionLimits = "set_limits"
	actionMode   = "set_mode"
	actionReset  = "reset_budget"
	actionCancel = "cancel_reservation"
)

// csrfCookie holds the browser's random value; forms carry its HMAC under the handler's key.
// An attacker's page can neither read the cookie nor compute the HMAC, and the cookie is
// SameSite=Strict besides.
const csrfCookie = "spendcap_console_csrf" // its value: crypto/rand.Text, 26 characters

// csrfToken is the form token of cookie value v.
func (h *Handler) csrfToken(v string) string {
	m := hmac.New(sha256.New, h.csrfKey)
	m.Write([]byte("spendcap console form\x00" + v))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// formToken returns the token of r's browser for the admin forms, setting its cookie on w when
// it has none; "" when the admin actions are off.
func (h *Handler) formToken(w http.ResponseWriter, r *http.Request) string {
	if h.opts.Admin == nil {
		return ""
	}
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) >= 26 {
		return h.csrfToken(c.Value)
	}
	v := rand.Text()
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: v, Path: h.opts.Prefix + "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	return h.csrfToken(v)
}

// checkToken says whether r carries the token of its own cookie.
func (h *Handler) checkToken(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil || len(c.Value) < 26 {
		return false
	}
	return hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(h.csrfToken(c.Value)))
}

// action is an admin action as its form sends it.
type action struct {
	Kind     string
	BudgetID string
	// set_limits: every dimension's limits after the change (nil: none).
	Limits []limitChange
	// set_mode
	Mode string
	// cancel_reservation: the reservation and the budget it was made on.
	ReservationID string
	NamedID       string
}

// limitChange is one dimension's limits before and after a set_limits action.
type limitChange struct {
	Dim                    string
	Hard, Soft             *int64
	HardBefore, SoftBefore *int64
}

// readAction reads the action a form posted, or says which field is wrong.
func readAction(r *http.Request) (action, error) {
	a := action{Kind: r.PostFormValue("action"), BudgetID: r.PostFormValue("id")}
	if a.BudgetID == "" {
		return a, fmt.Errorf("id: a budget is required")
	}
	switch a.Kind {
	case actionLimits:
		seen := map[string]bool{}
		for i := 0; i < 100; i++ {
			n := strconv.Itoa(i)
			if !r.PostForm.Has("dim_" + n) {
				break
			}
			dim := strings.TrimSpace(r.PostFormValue("dim_" + n))
			hard, err := optionalInt(r.PostFormValue("hard_"+n), "hard limit of "+dim)
			if err != nil {
				return a, err
			}
			soft, err := optionalInt(r.PostFormValue("soft_"+n), "soft limit of "+dim)
			if err != nil {
				return a, err
			}
			if dim == "" {
				if hard != nil || soft != nil {
					return a, fmt.Errorf("dimension: a limit needs a dimension name")
				}
				continue
			}
			if seen[dim] {
				return a, fmt.Errorf("dimension: %s is given twice", dim)
			}
			seen[dim] = true
			a.Limits = append(a.Limits, limitChange{Dim: dim, Hard: hard, Soft: soft})
		}
	case actionMode:
		a.Mode = r.PostFormValue("mode")
		if a.Mode != string(spendcap.ModeEnforce) && a.Mode != string(spendcap.ModeObserve) {
			return a, fmt.Errorf("mode: must be enforce or observe")
		}
	case actionReset:
	case actionCancel:
		a.ReservationID, a.NamedID = r.PostFormValue("reservation_id"), r.PostFormValue("named_id")
		if a.ReservationID == "" || a.NamedID == "" {
			return a, fmt.Errorf("reservation_id: a reservation and the budget it was made on are required")
		}
	default:
		return a, fmt.Errorf("action: must be %s, %s, %s or %s", actionLimits, actionMode, actionReset, actionCancel)
	}
	return a, nil
}

func optionalInt(s, name string) (*int64, error) {
	s = strings.ReplaceAll(strings.TrimSpace(s), ",", "")
	if s == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("%s: must be a whole number, 0 or more", name)
	}
	return &n, nil
}

// Fields are the form fields that post a again (the confirmation's form).
func (a action) Fields() url.Values {
	v := url.Values{"action": {a.Kind}, "id": {a.BudgetID}}
	for i, l := range a.Limits {
		n := strconv.Itoa(i)
		v.Set("dim_"+n, l.Dim)
		if l.Hard != nil {
			v.Set("hard_"+n, strconv.FormatInt(*l.Hard, 10))
		} else {
			v.Set("hard_"+n, "")
		}
		if l.Soft != nil {
			v.Set("soft_"+n, strconv.FormatInt(*l.Soft, 10))
		} else {
			v.Set("soft_"+n, "")
		}
	}
	if a.Mode != "" {
		v.Set("mode", a.Mode)
	}
	if a.ReservationID != "" {
		v.Set("reservation_id", a.ReservationID)
		v.Set("named_id", a.NamedID)
	}
	return v
}

// Title says what a does, for the confirmation and the log.
func (a action) Title() string {
	switch a.Kind {
	case actionLimits:
		return "Set the limits of " + a.BudgetID
	case actionMode:
		return "Switch " + a.BudgetID + " to " + a.Mode
	case actionReset:
		return "Reset " + a.BudgetID + ": close its window now"
	case actionCancel:
		return "Cancel reservation " + a.ReservationID + " of " + a.NamedID
	}
	return a.Kind
}

type confirmPage struct {
	Common common
	Action action
	Fields []field
	Token  string
}

// field is one hidden input of a form.
type field struct{ Name, Value string }

// refuse answers an admin request that may not run, and logs it.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h.opts.Logger.Warn("console: admin action refused", "reason", msg, "remote", r.RemoteAddr, "path", r.URL.Path)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = h.pages.ExecuteTemplate(w, "error.html", page{Common: h.common("Refused"), Message: msg, Status: status})
}

// admitted reads an admin request's action after the checks every one passes: admin actions on,
// a same-origin request, the form's token. It answers the refusal itself.
func (h *Handler) admitted(w http.ResponseWriter, r *http.Request) (action, bool) {
	if h.opts.Admin == nil {
		h.refuse(w, r, http.StatusForbidden, "This console is read-only: its admin actions are off.")
		return action{}, false
	}
	if err := h.origin.Check(r); err != nil {
		h.refuse(w, r, http.StatusForbidden, "A request from another site is refused.")
		return action{}, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		h.refuse(w, r, http.StatusBadRequest, "The form could not be read.")
		return action{}, false
	}
	if !h.checkToken(r) {
		h.refuse(w, r, http.StatusForbidden, "The form's token is missing or stale: open the budget's page again.")
		return action{}, false
	}
	a, err := readAction(r)
	if err != nil {
		h.refuse(w, r, http.StatusBadRequest, err.Error())
		return action{}, false
	}
	return a, true
}

// confirm shows what an action will do and asks for a second click, changing nothing.
func (h *Handler) confirm(w http.ResponseWriter, r *http.Request) {
	a, ok := h.admitted(w, r)
	if !ok {
		return
	}
	st, err := h.opts.Backend.BudgetStatus(r.Context(), spendcap.BudgetStatusParams{BudgetID: a.BudgetID})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if a.Kind == actionLimits {
		a.Limits = limitsBeforeAndAfter(st, a.Limits)
	}
	p := confirmPage{Common: h.common("Confirm"), Action: a, Token: r.PostFormValue("csrf")}
	v := a.Fields()
	for _, k := range sortedKeys(v) {
		p.Fields = append(p.Fields, field{k, v.Get(k)})
	}
	h.render(w, r, "confirm.html", p)
}

// limitsBeforeAndAfter lists every dimension that has a limit before or after, with both.
func limitsBeforeAndAfter(st spendcap.Status, after []limitChange) []limitChange {
	byDim := map[string]*limitChange{}
	var out []limitChange
	for _, l := range after {
		byDim[l.Dim] = &l
	}
	names := map[string]bool{}
	for _, m := range []map[string]int64{st.HardLimits, st.SoftLimits} {
		for d := range m {
			names[d] = true
		}
	}
	for d := range byDim {
		names[d] = true
	}
	for _, d := range sortedKeys(names) {
		c := limitChange{Dim: d}
		if l := byDim[d]; l != nil {
			c.Hard, c.Soft = l.Hard, l.Soft
		}
		if v, ok := st.HardLimits[d]; ok {
			c.HardBefore = &v
		}
		if v, ok := st.SoftLimits[d]; ok {
			c.SoftBefore = &v
		}
		out = append(out, c)
	}
	return out
}

// apply runs a confirmed action, logs it, and goes back to the budget's page.
func (h *Handler) apply(w http.ResponseWriter, r *http.Request) {
	a, ok := h.admitted(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	var err error
	detail := []any{}
	switch a.Kind {
	case actionLimits:
		p := spendcap.SetLimitsParams{BudgetID: a.BudgetID, HardLimits: map[string]int64{}, SoftLimits: map[string]int64{}}
		for _, l := range a.Limits {
			if l.Hard != nil {
				p.HardLimits[l.Dim] = *l.Hard
			}
			if l.Soft != nil {
				p.SoftLimits[l.Dim] = *l.Soft
			}
		}
		if len(p.HardLimits) == 0 {
			p.HardLimits, p.ClearHardLimits = nil, true
		}
		if len(p.SoftLimits) == 0 {
			p.SoftLimits, p.ClearSoftLimits = nil, true
		}
		detail = append(detail, "hard_limits", p.HardLimits, "soft_limits", p.SoftLimits)
		_, err = h.opts.Admin.SetLimits(ctx, p)
	case actionMode:
		detail = append(detail, "mode", a.Mode)
		_, err = h.opts.Admin.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: a.BudgetID, Mode: spendcap.Mode(a.Mode)})
	case actionReset:
		var win spendcap.Window
		win, err = h.opts.Admin.ResetBudget(ctx, spendcap.ResetBudgetParams{BudgetID: a.BudgetID})
		detail = append(detail, "window_seq", win.WindowSeq)
	case actionCancel:
		var freed map[string]int64
		freed, err = h.opts.Admin.CancelReservation(ctx, spendcap.CancelReservationParams{BudgetID: a.NamedID, ReservationID: a.ReservationID})
		detail = append(detail, "reservation_id", a.ReservationID, "named_id", a.NamedID, "released", freed)
	}
	user, _, _ := r.BasicAuth()
	attrs := append([]any{"action", a.Kind, "budget_id", a.BudgetID, "remote", r.RemoteAddr, "user", user}, detail...)
	if err != nil {
		h.opts.Logger.Warn("console: admin action failed", append(attrs, "err", err)...)
		if errorsIsInvalid(err) || isRefusal(err) {
			h.refuse(w, r, http.StatusBadRequest, err.Error())
			return
		}
		h.fail(w, r, err)
		return
	}
	h.opts.Logger.Info("console: admin action", attrs...)
	http.Redirect(w, r, budgetURL(h.opts.Prefix, a.BudgetID)+"&done="+a.Kind, http.StatusSeeOther)
}
