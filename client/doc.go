// Package client calls a pyexec service: it sends a Python script to
// POST /execute and returns what the script's main() returned, or runs
// cells of code one after another in a session (POST /sessions).
//
// # Running a script
//
// Make a Client for the service once and share it; it is safe for
// concurrent use:
//
//	c, err := client.New("http://localhost:8080")
//	if err != nil {
//		return err
//	}
//	res, err := c.Execute(ctx, client.Request{
//		Script: "def main(p):\n    return {'double': p['n'] * 2}\n",
//		Input:  map[string]any{"n": 21},
//	})
//	if err != nil {
//		return err
//	}
//	var out struct{ Double int }
//	err = res.Decode(&out) // out.Double == 42
//
// Result.Value holds the result as the service sent it, so numbers stay
// exact until you decode them; Result.Stdout holds what the script printed.
// A Request may also carry Files written into the script's working
// directory, Stdin, and Limits that tighten the service's own; files the
// script leaves under outputs/ come back decoded in Result.Files.
//
// # Failures
//
// A script that fails, and any other answer that is not a success, is
// returned as an *Error. Its Type is one of the ErrorType constants, the
// service's error_type, so one failure can be told from another with
// errors.As:
//
//	var e *client.Error
//	switch {
//	case errors.As(err, &e) && e.Type == client.ErrorTypeTimeout:
//		// the script ran out of time; e.Stdout is what it printed
//	case errors.As(err, &e) && e.Type == client.ErrorTypeException:
//		fmt.Println(e.Message, e.Traceback)
//	case err != nil:
//		// no answer at all: connection refused, ctx done, ...
//	}
//
// The service answers busy when its queue is full and sandbox_unavailable
// when its sandbox cannot run; in both cases nothing was run. Execute
// retries them with exponential backoff that honours the answer's
// Retry-After header, bounded in attempts and total wait (see WithRetry)
// and by the context, and returns the last *Error if the service stays
// unavailable.
//
// # Sessions
//
// A Session keeps a Python interpreter on the service from one call to the
// next: each cell runs in the session's global namespace, and the value of
// its last expression is the cell's result.
//
//	s, err := c.NewSession(ctx) // ended when ctx is done, or by s.Close
//	if err != nil {
//		return err
//	}
//	defer s.Close(ctx)
//	_, err = s.Run(ctx, "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2, 3]})")
//	res, err := s.Run(ctx, "int(df.a.sum())") // res.Value is 6
//
// A value without a JSON form comes back as its repr (CellResult.IsText,
// CellResult.Text). A cell that raises keeps the session; one that runs out
// of time or memory ends it, which Error.SessionEnded reports. The session
// keeps the cookies the service sets, which Cloud Run's session affinity
// needs to route its calls to the instance that holds it.
//
// # Private Cloud Run services
//
// A Cloud Run service that does not allow unauthenticated calls wants a
// Google ID token whose audience is its URL. WithIDToken fetches and
// refreshes such tokens from Application Default Credentials:
//
//	c, err := client.New("https://pyexec-abc123-uc.a.run.app",
//		client.WithIDToken(ctx))
//
// WithIDTokenSource takes tokens from any oauth2.TokenSource instead.
package client
