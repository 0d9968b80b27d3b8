package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/pyexec/pyexec/client"
)

// Run a script on a local service (make run) and tell a script's failure
// from a missing service. This example is compiled but not run, as it needs
// the service; the client's integration tests make the same call against a
// real one.
func Example() {
	ctx := context.Background()
	c, err := client.New("http://localhost:8080")
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.Execute(ctx, client.Request{Script: `import pandas as pd

def main():
    df = pd.DataFrame({"a": [1, 2, 3], "b": [4, 5, 6]})
    return {"sum_a": int(df["a"].sum()), "sum_b": int(df["b"].sum())}
`})
	var e *client.Error
	switch {
	case errors.As(err, &e) && e.Type == client.ErrorTypeTimeout:
		log.Fatalf("the script ran out of time; it printed %q", e.Stdout)
	case errors.As(err, &e):
		log.Fatalf("%s: %s\n%s", e.Type, e.Message, e.Traceback)
	case err != nil:
		log.Fatalf("no answer from the service: %v", err)
	}
	var sums struct {
		A int `json:"sum_a"`
		B int `json:"sum_b"`
	}
	if err := res.Decode(&sums); err != nil {
		log.Fatal(err)
	}
	fmt.Println(sums.A, sums.B)
}

// Give the script an argument, a file and a tighter time limit, and save
// the files it leaves in outputs/. Compiled, not run: it needs a service.
func ExampleClient_Execute() {
	ctx := context.Background()
	c, err := client.New("http://localhost:8080")
	if err != nil {
		log.Fatal(err)
	}
	table, err := client.ReadFile("testdata/in.csv", "data/in.csv")
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.Execute(ctx, client.Request{
		Script: `import pandas as pd

def main(p):
    df = pd.read_csv("data/in.csv")
    df[df.x > p["min"]].to_csv("outputs/big.csv", index=False)
    return {"rows": len(df)}
`,
		Input:  map[string]any{"min": 2},
		Files:  []client.File{table},
		Limits: client.Limits{Timeout: 5 * time.Second, MemoryMB: 256},
	})
	if err != nil {
		log.Fatal(err)
	}
	root, err := os.OpenRoot("results") // keeps the service's paths inside results/
	if err != nil {
		log.Fatal(err)
	}
	defer root.Close()
	for _, f := range res.Files {
		if err := root.MkdirAll(filepath.Dir(f.Path), 0o755); err != nil {
			log.Fatal(err)
		}
		if err := root.WriteFile(f.Path, f.Content, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

// Call a private Cloud Run service with ID tokens of Application Default
// Credentials, e.g. a service account that holds roles/run.invoker.
// Compiled, not run: it needs Google credentials and the service.
func ExampleWithIDToken() {
	ctx := context.Background()
	c, err := client.New("https://pyexec-abc123-uc.a.run.app", client.WithIDToken(ctx))
	if err != nil {
		log.Fatal(err) // no credentials that can mint ID tokens
	}
	res, err := c.Execute(ctx, client.Request{Script: "def main():\n    return 'hello'\n"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(res.Value))
}

// Decode the result into Go values; json.Number keeps integers beyond
// float64's 53 bits exact.
func ExampleResult_Decode() {
	// What Execute returns for a script whose main returns
	// {"name": "total", "count": 2**64 + 1}.
	res := &client.Result{Value: json.RawMessage(`{"name": "total", "count": 18446744073709551617}`)}

	var out struct {
		Name  string      `json:"name"`
		Count json.Number `json:"count"`
	}
	if err := res.Decode(&out); err != nil {
		log.Fatal(err)
	}
	fmt.Println(out.Name, out.Count)
	// Output: total 18446744073709551617
}

// Tell one failure from another with errors.As, however the error was
// wrapped on its way up.
func ExampleError() {
	// An error as Execute returns it for a script that ran too long,
	// wrapped by the caller's code.
	err := fmt.Errorf("nightly report: %w", &client.Error{
		Type:       client.ErrorTypeTimeout,
		Message:    "Execution timed out after 30 seconds",
		Stdout:     "loading...",
		StatusCode: 400,
	})

	var e *client.Error
	if errors.As(err, &e) && e.Type == client.ErrorTypeTimeout {
		fmt.Printf("timed out after printing %q\n", e.Stdout)
	}
	fmt.Println(err)
	// Output:
	// timed out after printing "loading..."
	// nightly report: pyexec: timeout: Execution timed out after 30 seconds
}

// Keep a DataFrame from one cell to the next in a session, and tell a cell
// that raised (the session lives on) from one that ended the session.
// Compiled, not run: it needs a service.
func ExampleSession_Run() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // ends the session too, should Close not be reached
	c, err := client.New("http://localhost:8080")
	if err != nil {
		log.Fatal(err)
	}
	s, err := c.NewSession(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close(ctx)

	if _, err := s.Run(ctx, "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2, 3]})"); err != nil {
		log.Fatal(err)
	}
	res, err := s.Run(ctx, "df.a.sum() / 0")
	var e *client.Error
	switch {
	case errors.As(err, &e) && e.SessionEnded:
		log.Fatalf("the session ended: %s", e.Message)
	case errors.As(err, &e):
		fmt.Println(e.Message) // ZeroDivisionError: ...; df is still there
	case err != nil:
		log.Fatal(err)
	}
	if res, err = s.Run(ctx, "df"); err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Text()) // a DataFrame has no JSON form: its repr
}
