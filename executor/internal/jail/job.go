package jail

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// job is what the harness reads on fd 3 before any user code runs
// (harness/harness.py describes the protocol): the script and what comes
// with it.
type job struct {
	Script string `json:"script"`
	// Input is present only when the request has one; JSON null is one.
	Input json.RawMessage `json:"input,omitempty"`
	Stdin *string         `json:"stdin,omitempty"`
	Files []jobFile       `json:"files,omitempty"`
	// Outputs caps the files that come back from outputs/.
	Outputs jobOutputs `json:"outputs"`
	// PrepareOutputs makes an empty outputs/ before the script runs. Only
	// requests that ask for more than a script get one, so that a script
	// alone finds its working directory as it always has: empty.
	PrepareOutputs bool `json:"prepare_outputs,omitempty"`
	// RlimitAS lowers the address-space limit to what the interpreter
	// holds plus this, where rlimits rather than a cgroup hold memory: the
	// rlimit counterpart of jail.fit.
	RlimitAS int64 `json:"rlimit_as,omitempty"`
}

// jobFile is an input file; encoding/json writes Content as base64.
type jobFile struct {
	Path    string `json:"path"`
	Content []byte `json:"content"`
}

type jobOutputs struct {
	MaxFiles   int `json:"max_files"`
	MaxBytes   int `json:"max_bytes"` // of the files and the display items together
	MaxDisplay int `json:"max_display"`
}

// newJob is the job of req. prepareOutputs makes the harness create
// outputs/ first; rlimitAS, when not zero, lowers its address-space limit.
func newJob(req Request, cfg Config, prepareOutputs bool, rlimitAS int64) ([]byte, error) {
	j := job{
		Script:         req.Script,
		Input:          req.Input,
		Files:          make([]jobFile, len(req.Files)),
		Outputs:        jobOutputs{MaxFiles: maxOutputFiles, MaxBytes: cfg.MaxOutputFilesBytes, MaxDisplay: maxDisplayItems},
		PrepareOutputs: prepareOutputs,
		RlimitAS:       rlimitAS,
	}
	if req.Stdin != "" {
		j.Stdin = &req.Stdin
	}
	for i, f := range req.Files {
		j.Files[i] = jobFile(f)
	}
	data, err := json.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("encoding the job: %w", err)
	}
	return data, nil
}

// reportCap is how much of the harness's report is read: the result, the
// error texts around it, and the output files in base64 with their names.
func reportCap(cfg Config) int {
	// A path's control characters are escaped as \u00XX: six bytes each.
	perFile := 6*maxPathBytes + 64
	return cfg.MaxResultBytes + reportOverhead + base64.StdEncoding.EncodedLen(cfg.MaxOutputFilesBytes) + maxOutputFiles*perFile
}
