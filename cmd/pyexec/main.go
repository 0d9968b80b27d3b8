// Command pyexec serves the function named by FUNCTION_TARGET (Execute, the
// default, or ExecuteEvent) with the Functions Framework on PORT (default
// 8080).
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

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	"github.com/pyexec/pyexec"
)

// shutdownGrace is the time from SIGTERM to exit.
const shutdownGrace = 10 * time.Second

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	// Without a target the framework would serve every function under its
	// own path prefix, which the API does not use.
	if os.Getenv("FUNCTION_TARGET") == "" {
		os.Setenv("FUNCTION_TARGET", "Execute")
	}
	if err := pyexec.Prepare(); err != nil {
		fmt.Fprintf(os.Stderr, "pyexec: %v\n", err)
		os.Exit(2)
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	served := make(chan error, 1)
	go func() { served <- funcframework.Start(port) }()

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
