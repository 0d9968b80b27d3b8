//go:build integration

package client_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pyexec/pyexec/client"
	"github.com/pyexec/pyexec/internal/testsupport"
)

// Sessions against the real service: a DataFrame lives from cell to cell,
// an exception keeps the session, and a closed session is gone.
func TestSessionAgainstTheService(t *testing.T) {
	svc := testsupport.StartBinary(t, map[string]string{"PYEXEC_MODE": "fork", "PYEXEC_TIMEOUT_SECONDS": "10"})
	svc.Health(t, http.StatusOK)
	c, err := client.New(svc.URL)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx := context.Background()
	s, err := c.NewSession(ctx)
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	if s.ID == "" || s.IdleTimeout <= 0 || !s.ExpiresAt.After(time.Now()) {
		t.Fatalf("session = %+v, want an ID, an idle timeout and an expiry to come", s)
	}
	run := func(t *testing.T, code string) *client.CellResult {
		t.Helper()
		res, err := s.Run(ctx, code)
		if err != nil {
			t.Fatalf("Run(%q): %v", code, err)
		}
		return res
	}

	t.Run("a statement's value is null", func(t *testing.T) {
		res := run(t, "import pandas as pd; df = pd.DataFrame({'a':[1,2,3]})")
		if string(res.Value) != "null" || res.ResultFormat != client.ResultFormatJSON {
			t.Errorf("Value %s, format %s; want null, json", res.Value, res.ResultFormat)
		}
	})

	t.Run("the next cell sees the DataFrame", func(t *testing.T) {
		var sum int
		if err := run(t, "int(df.a.sum())").Decode(&sum); err != nil || sum != 6 {
			t.Errorf("int(df.a.sum()) = %d, %v; want 6", sum, err)
		}
	})

	t.Run("a DataFrame comes back as its repr", func(t *testing.T) {
		res := run(t, "df")
		if !res.IsText() || !strings.Contains(res.Text(), "a") || !strings.Contains(res.Text(), "2  3") {
			t.Errorf("df = %s (format %s), want the text form of the frame", res.Value, res.ResultFormat)
		}
	})

	t.Run("an exception keeps the session", func(t *testing.T) {
		_, err := s.Run(ctx, "1 / 0")
		var e *client.Error
		if !errors.As(err, &e) || e.Type != client.ErrorTypeException || e.SessionEnded ||
			!strings.HasPrefix(e.Message, "ZeroDivisionError") {
			t.Fatalf("1 / 0 = %v (%+v), want a ZeroDivisionError exception that leaves the session", err, e)
		}
		var sum int
		if err := run(t, "int(df.a.sum())").Decode(&sum); err != nil || sum != 6 {
			t.Errorf("after the exception, int(df.a.sum()) = %d, %v; want 6", sum, err)
		}
	})

	t.Run("the state says idle", func(t *testing.T) {
		st, err := s.State(ctx)
		if err != nil {
			t.Fatalf("State: %v", err)
		}
		if st.ID != s.ID || st.State != client.SessionIdle || st.Cells < 4 {
			t.Errorf("State = %+v, want this session, idle, after at least 4 cells", st)
		}
	})

	t.Run("a closed session is not found", func(t *testing.T) {
		if err := s.Close(ctx); err != nil {
			t.Fatalf("Close: %v", err)
		}
		_, err := s.Run(ctx, "df")
		var e *client.Error
		if !errors.As(err, &e) || e.Type != client.ErrorTypeSessionNotFound || e.StatusCode != http.StatusNotFound {
			t.Errorf("Run after Close = %v, want session_not_found, 404", err)
		}
		if err := s.Close(ctx); err != nil {
			t.Errorf("a second Close = %v, want nil", err)
		}
	})

	t.Run("a session ends with its context", func(t *testing.T) {
		short, cancel := context.WithCancel(ctx)
		s, err := c.NewSession(short)
		if err != nil {
			t.Fatalf("NewSession: %v", err)
		}
		cancel()
		testsupport.PollUntil(t, 10*time.Second, "the session deleted after its context ended", func() bool {
			_, err := s.State(ctx)
			var e *client.Error
			return errors.As(err, &e) && e.Type == client.ErrorTypeSessionNotFound
		})
	})
}
