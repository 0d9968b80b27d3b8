package mcpserver

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyexec/pyexec/api"
)

// A tools/call as a client on protocol 2025-06-18 sends it. Stateless, it
// needs no initialize first.
const callPandas = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"run_python","arguments":{"script":"def main():\n    return 1"}}}`

// postJSONRPC posts body to url with the headers a streamable HTTP client
// sends, plus header's, and returns the status and the body of the answer.
func postJSONRPC(t *testing.T, url string, header http.Header, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	for name, values := range header {
		req.Header[name] = values
	}
	if host := header.Get("Host"); host != "" {
		req.Host = host
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data
}

// transportErrorMessage is the message of a JSON-RPC error answer with a null
// ID, failing t if data is not one.
func transportErrorMessage(t *testing.T, data []byte) string {
	t.Helper()
	var answer struct {
		JSONRPC string `json:"jsonrpc"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &answer); err != nil || json.Unmarshal(data, &fields) != nil {
		t.Fatalf("answer %q is not a JSON object: %v", data, err)
	}
	if answer.JSONRPC != "2.0" || string(fields["id"]) != "null" || answer.Error.Code != codeInvalidRequest {
		t.Fatalf("answer %s is not a JSON-RPC error with a null id", data)
	}
	return answer.Error.Message
}

func TestStructuredContentCarriesTheResultsExactBytes(t *testing.T) {
	const big = "1267650600228229401496703205377" // 2**100 + 1
	f := answering(Answer{ExecutionID: "exec-6", Success: &api.Success{Result: json.RawMessage(`{"big":` + big + `}`)}})
	srv := serve(t, f, testOptions)

	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	status, body := postJSONRPC(t, srv.URL, http.Header{"Traceparent": {traceparent}}, callPandas)
	if status != http.StatusOK {
		t.Fatalf("status = %d (%s), want 200", status, body)
	}
	var answer struct {
		Result struct {
			StructuredContent struct {
				Result struct {
					Big json.Number `json:"big"`
				} `json:"result"`
			} `json:"structuredContent"`
		} `json:"result"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&answer); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	if got := answer.Result.StructuredContent.Result.Big.String(); got != big {
		t.Errorf("structuredContent.result.big = %s, want %s exactly", got, big)
	}
	if got := f.recorded()[0].Header.Get("Traceparent"); got != traceparent {
		t.Errorf("RunFunc got traceparent %q, want %q", got, traceparent)
	}
}

func TestBodyOverTheCapIsRefusedWith413(t *testing.T) {
	opts := testOptions
	opts.MaxRequestBytes = 64 << 10
	f := answering(Answer{Success: &api.Success{Result: json.RawMessage(`1`)}})
	srv := serve(t, f, opts)
	// A tools/call whose body is n bytes long.
	callOf := func(n int) string {
		head, tail := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run_python","arguments":{"script":"`, `"}}}`
		return head + strings.Repeat("#", n-len(head)-len(tail)) + tail
	}

	t.Run("a body of exactly the cap is served", func(t *testing.T) {
		if status, body := postJSONRPC(t, srv.URL, nil, callOf(64<<10)); status != http.StatusOK {
			t.Fatalf("status = %d (%s), want 200", status, body)
		}
	})
	for _, chunked := range []bool{false, true} {
		name := "with Content-Length"
		if chunked {
			name = "chunked, without Content-Length"
		}
		t.Run(name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(callOf(64<<10 + 1))
			if chunked {
				body = io.MultiReader(body) // hides the length
			}
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			status, data := do(t, req)
			if status != http.StatusRequestEntityTooLarge {
				t.Fatalf("status = %d (%s), want 413", status, data)
			}
			if msg := transportErrorMessage(t, data); msg != "Request body too large (max 64KB)" {
				t.Errorf("message = %q, want Request body too large (max 64KB)", msg)
			}
		})
	}
	t.Run("the SDK's client fails the call", func(t *testing.T) {
		cs := connect(t, srv.URL)
		// The SDK's client reads only JSON-RPC errors that answer its
		// request's ID, and an ID cannot be read from a body that is not
		// read: it reports the HTTP status.
		_, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "run_python", Arguments: map[string]any{"script": strings.Repeat("#", 64<<10)}})
		if err == nil || !strings.Contains(err.Error(), http.StatusText(http.StatusRequestEntityTooLarge)) {
			t.Errorf("CallTool error = %v, want one that says the body is too large", err)
		}
	})
	if got := len(f.recorded()); got != 1 {
		t.Errorf("RunFunc called %d times, want once (only for the body within the cap)", got)
	}
}

func TestOnlyPostIsServed(t *testing.T) {
	srv := serve(t, answering(Answer{}), testOptions)
	for _, method := range []string{http.MethodGet, http.MethodDelete, http.MethodPut, http.MethodOptions} {
		t.Run(method, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), method, srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Accept", "application/json, text/event-stream")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			data, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
				t.Errorf("status = %d, Allow %q; want 405 with Allow: POST", resp.StatusCode, resp.Header.Get("Allow"))
			}
			transportErrorMessage(t, data)
		})
	}
}

// Every refusal of the transport, the SDK's own included, is a JSON-RPC
// error in a JSON body, answering the message's id when it could be read,
// with the status the refusal calls for and the service's error_type.
func TestTransportRefusalsAreJSONRPCErrors(t *testing.T) {
	f := answering(Answer{Success: &api.Success{Result: json.RawMessage(`1`)}})
	srv := serve(t, f, testOptions)
	for _, tc := range []struct {
		name   string
		header http.Header
		body   string
		status int
		code   int
		id     string
	}{
		{"a body that is not JSON", nil, `{"jsonrpc":"2.0",`, 400, codeParseError, "null"},
		{"an empty body", nil, ``, 400, codeParseError, "null"},
		{"a call without an id", nil, `{"jsonrpc":"2.0","method":"tools/call","params":{"name":"run_python","arguments":{"script":"x"}}}`, 400, codeInvalidRequest, "null"},
		{"a call without params", nil, `{"jsonrpc":"2.0","id":3,"method":"tools/call"}`, 400, codeInvalidRequest, "3"},
		{"an unknown protocol version", http.Header{"Mcp-Protocol-Version": {"1999-01-01"}}, callPandas, 400, codeInvalidRequest, "7"},
		{"an Accept without text/event-stream", http.Header{"Accept": {"application/json"}}, callPandas, 400, codeInvalidRequest, "7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			data, _ := io.ReadAll(resp.Body)
			var answer errorAnswer
			if err := json.Unmarshal(data, &answer); err != nil || answer.JSONRPC != "2.0" {
				t.Fatalf("answer %d %q is not a JSON-RPC error (%v)", resp.StatusCode, data, err)
			}
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("status = %d, Content-Type %q; want %d application/json", resp.StatusCode, resp.Header.Get("Content-Type"), tc.status)
			}
			if answer.Error.Code != tc.code || string(answer.ID) != tc.id || answer.Error.Message == "" || answer.Error.Data.ErrorType != "invalid_request" {
				t.Errorf("answer = %s, want code %d, id %s, a message and error_type invalid_request", data, tc.code, tc.id)
			}
		})
	}
	if got := len(f.recorded()); got != 0 {
		t.Errorf("RunFunc called %d times for refused requests", got)
	}
}

// A response or notification a client sends is accepted with 202 and no
// body, whatever its result holds: JSON-RPC allows any value, and the
// OpenAPI document's JSONRPCMessage says so too (api's tests).
func TestResponsesAndNotificationsAreAcceptedWith202(t *testing.T) {
	srv := serve(t, &fakeService{}, testOptions)
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"result":[1,2,3]}`,
		`{"jsonrpc":"2.0","id":"x","result":{}}`,
		`{"jsonrpc":"2.0","id":2,"result":null}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
	} {
		status, got := postJSONRPC(t, srv.URL, nil, body)
		if status != http.StatusAccepted || len(got) != 0 {
			t.Errorf("POST %s = %d %q, want 202 with no body", body, status, got)
		}
	}
}

// A message that JSON-RPC 2.0 forbids (a response with neither result nor
// error, or both, or an error that is not {code: integer, message: string};
// params that are not an object; an id of no valid type) is refused with 400 and a JSON-RPC error, as api/openapi.yaml's
// JSONRPCResponse says, where the SDK alone would accept it with 202. The
// error's id is the message's own, or null when that is not valid.
func TestMalformedMessagesAreRefused(t *testing.T) {
	srv := serve(t, &fakeService{}, testOptions)
	for body, wantID := range map[string]string{
		`{"jsonrpc":"2.0","id":1}`: `1`,
		`{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":"a"}}`: `1`,
		`{"jsonrpc":"2.0","id":"x","error":{}}`:                                `"x"`,
		`{"jsonrpc":"2.0","id":1,"error":{"code":0,"message":null}}`:           `1`,
		`{"jsonrpc":"2.0","id":1,"error":{"code":1.5,"message":"a"}}`:          `1`,
		`{"jsonrpc":"2.0","id":1,"error":"boom"}`:                              `1`,
		`{"jsonrpc":"2.0","id":1.5,"result":{}}`:                               `null`,
		`{"jsonrpc":"2.0","id":[1],"result":{}}`:                               `null`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/list","params":[null]}`:       `3`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/list","params":null}`:         `3`,
		`{"jsonrpc":"2.0","id":2.5,"method":"tools/list"}`:                     `null`,
	} {
		status, got := postJSONRPC(t, srv.URL, nil, body)
		var answer struct {
			ID    json.RawMessage `json:"id"`
			Error struct {
				Code int `json:"code"`
			} `json:"error"`
		}
		if status != http.StatusBadRequest || json.Unmarshal(got, &answer) != nil || answer.Error.Code != codeInvalidRequest || string(answer.ID) != wantID {
			t.Errorf("POST %s = %d %s, want 400 with error %d and id %s", body, status, got, codeInvalidRequest, wantID)
		}
	}
}
