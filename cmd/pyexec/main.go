// Command pyexec serves the function named by FUNCTION_TARGET (Execute, the
// default, or ExecuteEvent) on PORT (default 8080), as the Functions
// Framework's contract says. It serves the function itself, with net/http,
// rather than through funcframework.Start: the framework's ServeMux answers
// a path that is not clean ("//execute", "/a/../openapi.json") with its own
// text/html redirect, where the function answers every path in JSON.
//
// On SIGTERM or SIGINT it stops taking executions and exits within 10
// seconds, as Cloud Run expects: running executions may finish in the first
// 9, what is left is then killed and answered, and the logs are flushed.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pyexec/pyexec"
)

// shutdownGrace is the time from SIGTERM to exit.
const shutdownGrace = 10 * time.Second

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	target := os.Getenv("FUNCTION_TARGET")
	if target == "" {
		target = "Execute"
	}
	function, ok := pyexec.Function(target)
	if !ok {
		fmt.Fprintf(os.Stderr, "pyexec: FUNCTION_TARGET=%q: the functions are Execute and ExecuteEvent\n", target)
		os.Exit(2)
	}
	srv, err := pyexec.HTTPServer(":"+port, function)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pyexec: %v\n", err)
		os.Exit(2)
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe() }()

	code := 0
	select {
	case err := <-served:
		fmt.Fprintf(os.Stderr, "pyexec: serving on port %s: %v\n", port, err)
		code = 1
	case <-signals:
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := pyexec.Shutdown(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "pyexec: shutdown: %v\n", err)
	}
	os.Exit(code)
}
