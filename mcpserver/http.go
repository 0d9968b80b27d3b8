package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/pyexec/pyexec/api"
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
			writeError(w, http.StatusMethodNotAllowed, codeInvalidRequest, nullID, "Method not allowed: the MCP endpoint takes POST", api.ErrorTypeMethodNotAllowed)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// readMessage reads the whole body, at most max bytes, before next sees the
// request: it answers 413 when the body is larger and a JSON-RPC parse error
// when it is not JSON. The SDK has a cap of its own, but it answers in plain
// text; reading here first lets every answer be JSON-RPC. Whatever the SDK
// still refuses in plain text (a missing id or params, an unsupported
// protocol version, an Accept without both types) is rewritten as a
// JSON-RPC error answering the message's id, with the SDK's status and
// message.
func readMessage(max int64, next http.Handler) http.Handler {
	tooLarge := fmt.Sprintf("Request body too large (max %s)", size.Text(max, ""))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			writeError(w, http.StatusRequestEntityTooLarge, codeInvalidRequest, nullID, tooLarge, api.ErrorTypeInvalidRequest)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeError(w, http.StatusRequestEntityTooLarge, codeInvalidRequest, nullID, tooLarge, api.ErrorTypeInvalidRequest)
				return
			}
			// The client went away or sent a broken chunked body; nobody
			// is left to read a detailed answer.
			writeError(w, http.StatusBadRequest, codeInvalidRequest, nullID, "Request body could not be read", api.ErrorTypeInvalidRequest)
			return
		}
		if !json.Valid(body) {
			writeError(w, http.StatusBadRequest, codeParseError, nullID, "Parse error: the body is not JSON", api.ErrorTypeInvalidRequest)
			return
		}
		if why := invalidMessage(body); why != "" {
			writeError(w, http.StatusBadRequest, codeInvalidRequest, messageID(body), why, api.ErrorTypeInvalidRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		pw := &plainErrors{ResponseWriter: w, id: messageID(body)}
		next.ServeHTTP(pw, r)
		pw.finish()
	})
}

// invalidMessage says what is wrong with a JSON-RPC message that JSON-RPC
// 2.0 and api/openapi.yaml forbid but the SDK would take, or returns "" for
// any other message (the SDK answers the rest): a request's params that are
// not an object (MCP's params are always one); a response (a message
// without a method) with neither result nor error, or both, or an error that
// is not {code: integer, message: string}; an id that is neither a string
// nor an integer. The SDK accepts every response with 202 whatever it
// holds; refusing a malformed one here makes 202 mean a well-formed
// response, whatever its result.
func invalidMessage(body []byte) string {
	var msg map[string]json.RawMessage
	if json.Unmarshal(body, &msg) != nil {
		return "" // not one object: the SDK answers it
	}
	if id, ok := msg["id"]; ok && !isString(id) && !isInteger(id) {
		return "Invalid Request: id must be a string or an integer"
	}
	if _, ok := msg["method"]; ok {
		if params, ok := msg["params"]; ok && !isObject(params) {
			return "Invalid Request: params must be an object"
		}
		return ""
	}
	_, hasResult := msg["result"]
	errObj, hasError := msg["error"]
	if hasResult == hasError {
		return "Invalid Request: a message without a method is a response, and holds either result or error"
	}
	if hasError {
		var e map[string]json.RawMessage
		if !isObject(errObj) || json.Unmarshal(errObj, &e) != nil || !isInteger(e["code"]) || !isString(e["message"]) {
			return "Invalid Request: a response's error must be an object with an integer code and a string message"
		}
	}
	return ""
}

// isString, isObject and isInteger tell a JSON value's kind; a missing one
// (nil) is none of them.
func isString(raw json.RawMessage) bool { return len(raw) > 0 && raw[0] == '"' }

func isObject(raw json.RawMessage) bool { return len(raw) > 0 && raw[0] == '{' }

func isInteger(raw json.RawMessage) bool {
	var n int64
	return len(raw) > 0 && raw[0] != 'n' && json.Unmarshal(raw, &n) == nil
}

// nullID is the id of an error that answers no message that could be read.
var nullID = json.RawMessage("null")

// messageID is the id of the one JSON-RPC message body holds, or null when
// it holds none (a batch, a notification, an id of no valid type).
func messageID(body []byte) json.RawMessage {
	var msg struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(body, &msg) != nil || len(msg.ID) == 0 {
		return nullID
	}
	if isString(msg.ID) || isInteger(msg.ID) {
		return msg.ID
	}
	return nullID
}

// plainErrors passes the SDK's answers through, except its plain-text
// refusals (http.Error: a status of 400 or more with a text/plain body),
// which it keeps back and finish writes as JSON-RPC errors.
type plainErrors struct {
	http.ResponseWriter
	id          json.RawMessage
	wroteHeader bool
	status      int          // of the refusal kept back; 0 when none
	message     bytes.Buffer // its text
}

func (p *plainErrors) WriteHeader(status int) {
	if p.wroteHeader {
		return
	}
	p.wroteHeader = true
	if status >= http.StatusBadRequest && strings.HasPrefix(p.Header().Get("Content-Type"), "text/plain") {
		p.status = status
		return
	}
	p.ResponseWriter.WriteHeader(status)
}

func (p *plainErrors) Write(b []byte) (int, error) {
	if !p.wroteHeader {
		p.WriteHeader(http.StatusOK)
	}
	if p.status != 0 {
		const keep = 1 << 10 // an error's text, not a body
		p.message.Write(b[:min(len(b), max(0, keep-p.message.Len()))])
		return len(b), nil
	}
	return p.ResponseWriter.Write(b)
}

// Flush passes a flush on, except of a refusal kept back.
func (p *plainErrors) Flush() {
	if f, ok := p.ResponseWriter.(http.Flusher); ok && p.status == 0 {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (p *plainErrors) Unwrap() http.ResponseWriter { return p.ResponseWriter }

// finish writes the refusal kept back, if any.
func (p *plainErrors) finish() {
	if p.status == 0 {
		return
	}
	p.Header().Del("X-Content-Type-Options")
	writeError(p.ResponseWriter, p.status, codeInvalidRequest, p.id, strings.TrimSpace(p.message.String()), api.ErrorTypeInvalidRequest)
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

// errorAnswer is a JSON-RPC error answer to an HTTP request refused by the
// transport, before or instead of the MCP server's handling of its message.
type errorAnswer struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    struct {
			ErrorType string `json:"error_type"`
		} `json:"data"`
	} `json:"error"`
}

// JSON-RPC's codes for "the body is not JSON" and "the JSON sent is not a
// valid Request".
const (
	codeParseError     = -32700
	codeInvalidRequest = -32600
)

// WriteRefusal answers a request to the MCP endpoint that the service
// refuses before the endpoint reads it (a cross-origin request, a foreign
// Host, a body that is not JSON) with a JSON-RPC error: status is the HTTP
// status, errorType the service's error_type, which the error's data holds.
func WriteRefusal(w http.ResponseWriter, status int, message string, errorType api.ErrorType) {
	writeError(w, status, codeInvalidRequest, nullID, message, errorType)
}

// writeError writes a JSON-RPC error with the given HTTP status, answering
// the message id (null when none could be read). MCP clients read the
// JSON-RPC error of a non-2xx answer and show its message.
func writeError(w http.ResponseWriter, status, code int, id json.RawMessage, message string, errorType api.ErrorType) {
	var body errorAnswer
	body.JSONRPC = "2.0"
	body.ID = id
	body.Error.Code = code
	body.Error.Message = message
	body.Error.Data.ErrorType = string(errorType)
	data, err := json.Marshal(body)
	if err != nil {
		// Only an id that is not JSON could fail, and ids are checked.
		panic(err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(status)
	_, _ = w.Write(data)
}
