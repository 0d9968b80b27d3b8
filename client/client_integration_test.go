//go:build integration

package client_test

import (
	"context"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pyexec/pyexec/client"
)

// The client against the real service: built from cmd/pyexec, running
// scripts in nsjail. One execution at a time and no queue, so that a second
// concurrent request is answered busy.
func TestClientAgainstTheService(t *testing.T) {
	url := startService(t, "PYEXEC_TIMEOUT_SECONDS=2", "PYEXEC_CONCURRENCY=1", "PYEXEC_QUEUE=0")
	c, err := client.New(url)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx := context.Background()
	execute := func(t *testing.T, script string) (*client.Result, error) {
		t.Helper()
		return c.Execute(ctx, client.Request{Script: script})
	}
	// asError is err's *Error, failing t if it has none.
	asError := func(t *testing.T, err error) *client.Error {
		t.Helper()
		var e *client.Error
		if !errors.As(err, &e) {
			t.Fatalf("Execute = %v, want an *Error", err)
		}
		return e
	}

	t.Run("the pandas example returns its sums", func(t *testing.T) {
		script, err := os.ReadFile("../examples/pandas_sum.py")
		if err != nil {
			t.Fatal(err)
		}
		res, err := execute(t, string(script))
		if err != nil {
			t.Fatalf("Execute: %v", err)
		}
		var sums map[string]int
		if err := res.Decode(&sums); err != nil {
			t.Fatalf("Decode: %v", err)
		}
		if want := map[string]int{"sum_a": 6, "sum_b": 15}; !reflect.DeepEqual(sums, want) {
			t.Errorf("result = %v, want %v", sums, want)
		}
		if res.Stdout != "" || res.ExecutionID == "" || res.Duration <= 0 {
			t.Errorf("Stdout %q, ExecutionID %q, Duration %v; want no stdout, an ID and a duration", res.Stdout, res.ExecutionID, res.Duration)
		}
	})

	t.Run("what the script printed comes back", func(t *testing.T) {
		script, err := os.ReadFile("../examples/hello.py")
		if err != nil {
			t.Fatal(err)
		}
		res, err := execute(t, string(script))
		if err != nil {
			t.Fatalf("Execute: %v", err)
		}
		if res.Stdout != "Calculating..." || string(res.Value) != `{"answer":4}` {
			t.Errorf("Stdout %q, Value %s; want Calculating... and {\"answer\":4}", res.Stdout, res.Value)
		}
	})

	t.Run("big integers come back exact", func(t *testing.T) {
		res, err := execute(t, "def main():\n    return 2**70 + 1\n")
		if err != nil {
			t.Fatalf("Execute: %v", err)
		}
		if string(res.Value) != "1180591620717411303425" {
			t.Errorf("Value = %s, want 1180591620717411303425", res.Value)
		}
	})

	t.Run("a timeout is told apart from a syntax error", func(t *testing.T) {
		_, timeoutErr := execute(t, "import time\ndef main():\n    print('started', flush=True)\n    time.sleep(30)\n")
		_, syntaxErr := execute(t, "def main(:\n    return 1\n")

		e := asError(t, timeoutErr)
		if e.Type != client.ErrorTypeTimeout || e.StatusCode != 400 || e.Stdout != "started" ||
			e.Message != "Execution timed out after 2 seconds" || e.ExecutionID == "" {
			t.Errorf("timeout = %+v, want type timeout, 400, stdout started, the 2 s limit and an ID", e)
		}
		e = asError(t, syntaxErr)
		if e.Type != client.ErrorTypeSyntaxError || e.StatusCode != 400 || !strings.HasPrefix(e.Message, "SyntaxError:") {
			t.Errorf("syntax error = %+v, want type syntax_error, 400, a SyntaxError message", e)
		}
	})

	t.Run("an exception carries the script's traceback", func(t *testing.T) {
		_, err := execute(t, "def main():\n    return 1 / 0\n")
		e := asError(t, err)
		if e.Type != client.ErrorTypeException || e.Message != "ZeroDivisionError: division by zero" ||
			!strings.Contains(e.Traceback, "in main") {
			t.Errorf("exception = %+v, want ZeroDivisionError with a traceback through main", e)
		}
	})

	t.Run("a script without main is no_main", func(t *testing.T) {
		script, err := os.ReadFile("../examples/no_main.py")
		if err != nil {
			t.Fatal(err)
		}
		_, err = execute(t, string(script))
		if e := asError(t, err); e.Type != client.ErrorTypeNoMain || e.Message != "Script must contain a 'def main()' function" {
			t.Errorf("no main = %+v, want no_main", e)
		}
	})

	t.Run("busy is retried until the slot is free", func(t *testing.T) {
		// The one slot is held until the 2 s limit ends the script.
		holding := make(chan error, 1)
		go func() {
			_, err := c.Execute(ctx, client.Request{Script: "import time\ndef main():\n    time.sleep(30)\n"})
			holding <- err
		}()
		time.Sleep(300 * time.Millisecond) // for the holding request to reach the service

		noRetry, err := client.New(url, client.WithRetry(1, 0))
		if err != nil {
			t.Fatal(err)
		}
		_, err = noRetry.Execute(ctx, client.Request{Script: "def main():\n    return 1\n"})
		if e := asError(t, err); e.Type != client.ErrorTypeBusy || e.StatusCode != 503 {
			t.Errorf("without retries = %+v, want busy, 503", e)
		}

		res, err := execute(t, "def main():\n    return 'after the wait'\n")
		if err != nil {
			t.Errorf("with retries = %v, want success once the slot is free", err)
		} else if string(res.Value) != `"after the wait"` || res.Duration < time.Second {
			t.Errorf("with retries = %s after %v, want \"after the wait\" after at least the 1 s Retry-After", res.Value, res.Duration)
		}
		if e := asError(t, <-holding); e.Type != client.ErrorTypeTimeout {
			t.Errorf("the request holding the slot = %+v, want a timeout", e)
		}
	})
}
