package executor

import (
	"encoding/json"
	"time"
)

// Request is one script to run.
type Request struct {
	// ID names the execution in logs and temporary names. Run generates one
	// when it is empty.
	ID     string
	Script string
}

// Result is what an execution produced.
type Result struct {
	// Value is main()'s return value as strict JSON. It is set only when Run
	// returns a nil error.
	Value json.RawMessage
	// Stdout is what the script printed, decoded as UTF-8 with invalid bytes
	// replaced, trailing newlines removed, capped at Config.MaxOutputBytes. It
	// is set on failures too: everything printed before the failure.
	Stdout string
	// Duration is the wall time of the execution, queueing excluded.
	Duration time.Duration
}

// Health says whether the executor runs scripts and with what isolation.
type Health struct {
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"` // why it is not ready
	Mode   string `json:"mode"`
	// Fallback says why faster modes than Mode are not in use (their
	// self-test failed), when Mode was chosen automatically.
	Fallback string `json:"fallback,omitempty"`
	// TeardownFailures counts sandboxes whose teardown (after their
	// execution was answered) failed; what they left is swept at the next
	// start. Non-zero deserves an operator's look.
	TeardownFailures int64     `json:"teardown_failures"`
	Isolation        Isolation `json:"isolation"`
	Versions         Versions  `json:"versions"`
}

// Isolation names the layers each execution runs under.
type Isolation struct {
	Namespaces []string `json:"namespaces"`
	Seccomp    bool     `json:"seccomp"`
	UID        int      `json:"uid"`
	// OutsideUIDs is the range of unprivileged host uids jails run as, one
	// per execution slot, e.g. "200000-200001".
	OutsideUIDs string `json:"outside_uids"`
	// Limits is how memory and process counts are enforced: "cgroup v1",
	// "cgroup v2" or "rlimit" (the fallback where no cgroup is usable).
	Limits string `json:"limits"`
}

// Versions of the parts a script runs on.
type Versions struct {
	Python string `json:"python"`
	Pandas string `json:"pandas"`
	Numpy  string `json:"numpy"`
	Nsjail string `json:"nsjail"`
}
