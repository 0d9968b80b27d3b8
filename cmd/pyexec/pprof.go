//go:build pprof

package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
)

// A build with the pprof tag (make profile builds one) also serves Go's
// profiler, on the loopback address PYEXEC_PPROF_ADDR (e.g. 127.0.0.1:6060).
// The service's own binary has none of this: its handlers would tell anyone
// who reaches the port about the service's internals.
func init() {
	addr := os.Getenv("PYEXEC_PPROF_ADDR")
	if addr == "" {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		fmt.Fprintf(os.Stderr, "pyexec: PYEXEC_PPROF_ADDR must be a loopback address and port, got %q\n", addr)
		os.Exit(2)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	go func() {
		if err := http.ListenAndServe(addr, mux); err != nil {
			fmt.Fprintf(os.Stderr, "pyexec: profiler: %v\n", err)
		}
	}()
}
