package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/pyexec/pyexec/internal/size"
)

// postOnly answers every method but POST with 405. The stateless transport
// needs nothing else: GET would open an event stream for server-initiated
// messages, which a stateless server never sends, and DELETE would end a
// session, which it never has. Answering here, rather than in the SDK, keeps
// the answer JSON like every other answer of the service.
func postOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeTransportError(w, http.StatusMethodNotAllowed, "Method not allowed: the MCP endpoint takes POST")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// capBody reads the whole body, at most max bytes, before next sees the
// request, and answers 413 when it is larger. The SDK has a cap of its own,
// but it answers in plain text; reading here first lets the 413 be JSON.
func capBody(max int64, next http.Handler) http.Handler {
	tooLarge := fmt.Sprintf("Request body too large (max %s)", size.Text(max, ""))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			writeTransportError(w, http.StatusRequestEntityTooLarge, tooLarge)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeTransportError(w, http.StatusRequestEntityTooLarge, tooLarge)
				return
			}
			// The client went away or sent a broken chunked body; nobody
			// is left to read a detailed answer.
			writeTransportError(w, http.StatusBadRequest, "Request body could not be read")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// requestContextKey is the context key under which withRequestContext keeps
// the HTTP request's own context.
type requestContextKey struct{}

// withRequestContext keeps the request's context among its own values, where
// the tool handler finds it (see untilClientGone).
func withRequestContext(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestContextKey{}, r.Context())))
	})
}

// untilClientGone returns a context that also ends when the HTTP request
// that carried the call ends: its client went away, and no answer can reach
// it any more.
//
// The SDK derives a tool handler's context from the request's context with
// its cancellation cut off, and restores the cancellation only for protocol
// 2026-07-28 and later (StreamableHTTPOptions.PropagateRequestCancellation).
// Clients on earlier versions, most of those in use, would otherwise keep a
// sandbox busy until the script's timeout after they had gone. Values do
// pass through, which is how the request's context gets here.
func untilClientGone(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	if requestCtx, ok := ctx.Value(requestContextKey{}).(context.Context); ok {
		stop := context.AfterFunc(requestCtx, cancel)
		return ctx, func() { stop(); cancel() }
	}
	return ctx, cancel
}

// transportError is a JSON-RPC error answer to an HTTP request refused before
// its JSON-RPC message was read, so it answers no request ID (null).
type transportError struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// codeInvalidRequest is JSON-RPC's "the JSON sent is not a valid Request".
const codeInvalidRequest = -32600

// writeTransportError writes a JSON-RPC error with the given HTTP status.
// MCP clients read the JSON-RPC error of a non-2xx answer and show its message.
func writeTransportError(w http.ResponseWriter, status int, message string) {
	var body transportError
	body.JSONRPC = "2.0"
	body.ID = json.RawMessage("null")
	body.Error.Code = codeInvalidRequest
	body.Error.Message = message
	data, _ := json.Marshal(body) // cannot fail: strings and a literal
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(data)
}
