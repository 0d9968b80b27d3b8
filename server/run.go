package server

import (
	"context"
	"encoding/base64"
	"time"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/executor"
)

// entryPoint is a way requests reach the server, and what differs between
// them once they are decoded.
type entryPoint struct {
	// function names it in the log's "function" field.
	function string
	// fromPubSub: nobody waits for an answer; the outcome goes to the log
	// (and the results topic) whole, and a fault of the service is
	// retried by Pub/Sub redelivering the message.
	fromPubSub bool
}

var (
	viaHTTP   = entryPoint{function: "Execute"}
	viaPubSub = entryPoint{function: "ExecuteEvent", fromPubSub: true}
	// viaMCP is the run_python tool of Execute's POST /mcp.
	viaMCP = entryPoint{function: "mcp"}
)

// execution is one request as an entry point received it.
type execution struct {
	id      string    // the execution ID, answered and logged
	arrived time.Time // when the entry point took the request
	req     request
	// err is why the request could not be decoded; the executor is not
	// asked to run it.
	err         error
	trace, span string // of the log entry
	messageID   string // Pub/Sub's, for ExecuteEvent
}

// outcome is what became of an execution.
type outcome struct {
	result  executor.Result
	err     error   // nil: success
	failure failure // err, mapped; zero on success
	// published is the outcome as a Pub/Sub execution's log entry holds it
	// and the results topic gets it; built once, by run, for those only.
	published api.Outcome
}

// run is the one way every entry point runs a request: it waits for the
// first sandbox self-test if it still runs, runs the script, maps the
// error and writes the execution's log entry.
func (s *Server) run(ctx context.Context, via entryPoint, x execution) outcome {
	o := outcome{err: x.err}
	if o.err == nil {
		s.awaitFirstSelfTest(ctx)
		o.result, o.err = s.exec.Run(ctx, x.req.executorRequest(x.id))
	}
	if o.err != nil {
		o.failure = mapError(o.err, x.id)
	}
	if via.fromPubSub {
		o.published = o.outcomeOf(x)
	}
	s.log.Log(executionEntry(via, x, o, time.Since(x.arrived), ctx.Err() != nil))
	return o
}

// success is the 200 answer of a successful outcome. It has "files" only
// when the script left some, so that every other answer stays as it was.
func (o outcome) success() api.Success {
	return api.Success{Result: o.result.Value, Stdout: o.result.Stdout, Files: outputFiles(o.result.Files), Display: display(o.result.Display)}
}

// display is the executor's rich outputs as answers carry them: a PNG
// base64, a text as it is; nil when there are none.
func display(items []executor.Display) []api.DisplayItem {
	if len(items) == 0 {
		return nil
	}
	out := make([]api.DisplayItem, len(items))
	for i, d := range items {
		data := string(d.Data)
		if d.Type == executor.DisplayPNG {
			data = base64.StdEncoding.EncodeToString(d.Data)
		}
		out[i] = api.DisplayItem{Type: d.Type, Data: data}
	}
	return out
}

// outputFiles is the executor's output files as answers carry them; nil
// when there are none.
func outputFiles(files []executor.File) []api.OutputFile {
	if len(files) == 0 {
		return nil
	}
	out := make([]api.OutputFile, len(files))
	for i, f := range files {
		out[i] = api.OutputFile{
			Path:     f.Path,
			Content:  base64.StdEncoding.EncodeToString(f.Content),
			Encoding: api.EncodingBase64,
			Bytes:    len(f.Content),
		}
	}
	return out
}

// answered is the failure of a failed outcome, with the script's stdout in
// its body.
func (o outcome) answered() failure {
	f := o.failure
	f.body.Stdout = o.result.Stdout
	return f
}

// outcomeOf is the outcome as ExecuteEvent publishes it.
func (o outcome) outcomeOf(x execution) api.Outcome {
	p := api.Outcome{
		ExecutionID: x.id,
		MessageID:   x.messageID,
		ID:          x.req.callerID,
		Status:      api.OutcomeOK,
		Stdout:      o.result.Stdout,
		DurationMS:  o.result.Duration.Milliseconds(),
	}
	if o.err == nil {
		p.Result = o.result.Value
		p.Files = outputFiles(o.result.Files)
		p.Display = display(o.result.Display)
		return p
	}
	f := o.failure.body
	p.Status, p.Error, p.ErrorType, p.Traceback = api.OutcomeError, f.Error, f.ErrorType, f.Traceback
	return p
}

// outcomeTooLargeMessage is the error of an outcome too large to publish.
const outcomeTooLargeMessage = "Output limit exceeded (the outcome is over Pub/Sub's 10 MB message limit)"

// tooLargeOutcome is what is published in place of an outcome over Pub/Sub's
// message limit: an output_limit with the start of stdout, as the log has
// it, and neither result nor files.
func tooLargeOutcome(p api.Outcome) api.Outcome {
	stdout, _ := capText(p.Stdout)
	return api.Outcome{
		ExecutionID: p.ExecutionID,
		MessageID:   p.MessageID,
		ID:          p.ID,
		Status:      api.OutcomeError,
		Stdout:      stdout,
		Error:       outcomeTooLargeMessage,
		ErrorType:   string(api.ErrorTypeOutputLimit),
		DurationMS:  p.DurationMS,
	}
}
