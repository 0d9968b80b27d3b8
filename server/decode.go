package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/executor"
	"github.com/pyexec/pyexec/internal/size"
)

// request is what a caller asks to run, decoded: the executor's Request,
// which runs as it is, and beside it the caller ID a Pub/Sub message may
// bring, which the executor does not need. /execute's body and
// ExecuteEvent's message data carry the same JSON object, and decoder.decode
// is the one decoder of both: a field of that object is added here, once.
type request struct {
	executor.Request
	// callerID is the message data's optional "id", which ExecuteEvent
	// logs and publishes with the outcome. /execute ignores an "id" like
	// any other unknown field.
	callerID string
}

// executorRequest is the request as the executor runs it, as execution id.
func (r request) executorRequest(id string) executor.Request {
	req := r.Request
	req.ID = id
	return req
}

// inputFilesBytes is the decoded size of the request's files together.
func (r request) inputFilesBytes() int {
	n := 0
	for _, f := range r.Files {
		n += len(f.Content)
	}
	return n
}

// payload is one of the two places a request arrives in. The checks are the
// same; the messages name the place as its callers know it.
type payload struct {
	notUTF8   string
	notObject string
	noScript  string
	badScript string
	// withCallerID: the object's "id" is read (and must be a string).
	withCallerID bool
}

var (
	// requestBody is /execute's body.
	requestBody = payload{
		notUTF8:   "Request body must be valid UTF-8",
		notObject: "Request body must be a JSON object with a 'script' field",
		noScript:  "Missing 'script' field: Script must be a non-empty string",
		badScript: "Script must be a non-empty string",
	}
	// messageData is the decoded data of a Pub/Sub message.
	messageData = payload{
		notUTF8:      "message data must be valid UTF-8",
		notObject:    `message data must be a JSON object {"script": "..."}`,
		noScript:     `message data has no "script"`,
		badScript:    `"script" must be a string`,
		withCallerID: true,
	}
)

// decoder decodes requests under the service's caps.
type decoder struct {
	// maxBytes caps a request's JSON: /execute's body, a message's data.
	maxBytes int64
	// caps are the executor's, whose rules the limits are held to.
	caps executor.Limits
}

// decoder is the server's decoder.
func (s *Server) decoder() decoder {
	return decoder{maxBytes: s.cfg.requestCap(), caps: s.exec.Limits()}
}

// decode decodes a request object. On an error it returns only the caller
// ID, if it could be read, so that it is logged even when the script is
// missing.
//
// It checks what JSON can say: that each member has its type, that
// encodings decode, that limits are numbers. The executor's rules (request.go
// there) say the rest: the limits' numbers are turned into a timeout and a
// memory size by its rule of each, which alone knows their ranges; Run
// applies the others (whether the script is blank or too large, whether
// paths are plain, the counts and sizes of files).
func (d decoder) decode(data []byte, p payload) (request, error) {
	var req request
	// encoding/json would quietly replace invalid UTF-8, running a script
	// other than the one sent.
	if !utf8.Valid(data) {
		return req, invalidRequest(p.notUTF8)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return req, invalidRequest(p.notObject)
	}
	if p.withCallerID {
		// A null id is no id.
		if raw, ok := fields["id"]; ok && !isNull(raw) {
			if err := json.Unmarshal(raw, &req.callerID); err != nil {
				return req, invalidRequest(`"id" must be a string`)
			}
		}
	}
	raw, ok := fields["script"]
	if !ok {
		return req, invalidRequest(p.noScript)
	}
	// Unmarshal takes null for an empty string; a null script is no string.
	if isNull(raw) || json.Unmarshal(raw, &req.Script) != nil {
		return req, invalidRequest(p.badScript)
	}
	if hasLoneSurrogate(raw) {
		return request{callerID: req.callerID}, invalidRequest("'script' " + loneSurrogateRule)
	}
	if err := d.decodeExtensions(fields, &req); err != nil {
		// Nothing of a request that cannot run is kept but its caller ID.
		return request{callerID: req.callerID}, err
	}
	return req, nil
}

// decodeExtensions decodes the members that may come with a script: input,
// stdin, files and limits.
func (d decoder) decodeExtensions(fields map[string]json.RawMessage, req *request) error {
	// JSON null is an input like any other (main(None)); the other
	// members are absent when null.
	for _, name := range []string{"stdin", "files", "limits"} {
		if raw, ok := fields[name]; ok && !isNull(raw) {
			req.Extended = true
		}
	}
	if raw, ok := fields["input"]; ok {
		req.Extended = true
		if err := checkInput(raw); err != nil {
			return err
		}
		req.Input = raw
	}
	var err error
	if raw, ok := fields["stdin"]; ok && !isNull(raw) {
		if json.Unmarshal(raw, &req.Stdin) != nil {
			return invalidRequest("'stdin' must be a string")
		}
		if hasLoneSurrogate(raw) {
			return invalidRequest("'stdin' " + loneSurrogateRule)
		}
	}
	if raw, ok := fields["files"]; ok && !isNull(raw) {
		if req.Files, err = decodeFiles(raw); err != nil {
			return err
		}
	}
	if raw, ok := fields["limits"]; ok && !isNull(raw) {
		if req.Timeout, req.MemoryBytes, err = decodeLimits(raw, d.caps); err != nil {
			return err
		}
	}
	return nil
}

// decodeFiles decodes the "files" member: each file's content is decoded as
// its encoding says.
func decodeFiles(raw json.RawMessage) ([]executor.File, error) {
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		return nil, invalidRequest(`'files' must be an array of {"path", "content", "encoding"} objects`)
	}
	files := make([]executor.File, len(list))
	for i, item := range list {
		var f map[string]json.RawMessage
		if json.Unmarshal(item, &f) != nil || f == nil {
			return nil, invalidRequest(fmt.Sprintf(`files[%d] must be an object {"path", "content", "encoding"}`, i))
		}
		var path, content, encoding string
		if raw, ok := f["path"]; !ok || isNull(raw) || json.Unmarshal(raw, &path) != nil {
			return nil, invalidRequest(fmt.Sprintf("files[%d].path must be a string", i))
		}
		if raw, ok := f["content"]; !ok || isNull(raw) || json.Unmarshal(raw, &content) != nil {
			return nil, invalidRequest(fmt.Sprintf("files[%d].content must be a string", i))
		}
		if raw, ok := f["encoding"]; ok && !isNull(raw) && (json.Unmarshal(raw, &encoding) != nil || encoding == "") {
			encoding = "?" // not a string, or an empty one: refused below
		}
		if hasLoneSurrogate(f["path"]) {
			return nil, invalidRequest(fmt.Sprintf("files[%d].path %s", i, loneSurrogateRule))
		}
		// Past here, every message names the file by its path as well.
		of := "of " + executor.QuotePath(path)
		if hasLoneSurrogate(f["content"]) {
			return nil, invalidRequest(fmt.Sprintf("files[%d].content %s %s", i, of, loneSurrogateRule))
		}
		files[i].Path = path
		switch encoding {
		case "", api.EncodingUTF8:
			files[i].Content = []byte(content)
		case api.EncodingBase64:
			// Strict: padding bits must be zero, so that one content has
			// one encoding. Line breaks are skipped, as base64 tools wrap.
			decoded, err := base64.StdEncoding.Strict().DecodeString(content)
			if err != nil {
				return nil, invalidRequest(fmt.Sprintf("files[%d].content %s is not valid base64 (%v)", i, of, err))
			}
			files[i].Content = decoded
		default:
			return nil, invalidRequest(fmt.Sprintf(`files[%d].encoding %s must be "utf-8" (the default) or "base64"`, i, of))
		}
	}
	return files, nil
}

// decodeLimits decodes the "limits" member: each limit a JSON number,
// which the executor's rule of it (caps') turns into the limit, or refuses
// in a message that quotes it as sent. A value that is no number is handed
// to the rule as NaN, so that its message is the rule's too.
func decodeLimits(raw json.RawMessage, caps executor.Limits) (time.Duration, int64, error) {
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil || fields == nil {
		return 0, 0, invalidRequest(`'limits' must be an object {"timeout_seconds", "memory_mb"}`)
	}
	var timeout time.Duration
	var memory int64
	var err error
	if raw, ok := fields["timeout_seconds"]; ok && !isNull(raw) {
		if timeout, err = caps.TimeoutSeconds(number(raw), clip(raw)); err != nil {
			return 0, 0, err
		}
	}
	if raw, ok := fields["memory_mb"]; ok && !isNull(raw) {
		if memory, err = caps.MemoryMiB(number(raw), clip(raw)); err != nil {
			return 0, 0, err
		}
	}
	return timeout, memory, nil
}

// number reads a JSON number as a float64: ±Inf past a float's range, NaN
// when raw is no number (a string holding one included).
func number(raw json.RawMessage) float64 {
	var n json.Number
	if json.Unmarshal(raw, &n) != nil || !bytes.Equal(bytes.TrimSpace(raw), []byte(n)) {
		return math.NaN()
	}
	f, _ := n.Float64() // ±Inf, with an error, past a float's range
	return f
}

// clip is a member's JSON text as a message quotes it: at most 40 bytes.
func clip(raw json.RawMessage) string {
	const n = 40
	if len(raw) <= n {
		return string(raw)
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(raw[cut]) {
		cut--
	}
	return string(raw[:cut]) + "…"
}

// What of an input Python's json module, inside the jail, can take: it
// parses nesting by recursion, within the interpreter's limit of 1,000
// frames (some of them the harness's own), and an integer's digits in time
// quadratic in their number, which Python itself caps at 4,300 digits.
// Past them the script would be blamed for the sandbox's parser.
const (
	maxInputDepth     = 500
	maxInputIntDigits = 4300
)

// checkInput refuses an input (JSON text, already known to be valid) that
// Python could not take as main's argument, or not exactly: one nested too
// deep, one holding an integer over maxInputIntDigits digits, or a number
// beyond a float's range (Python would make it inf). Numbers with a
// fraction or an exponent are Python floats: the nearest double, as any
// JSON parser gives.
//
// It scans the text byte by byte rather than through a json.Decoder: an
// input may be as large as the request, and this runs before the request
// waits for its turn.
func checkInput(raw json.RawMessage) error {
	depth := 0
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '"':
			// Skip the string; valid JSON ends it with an unescaped quote.
			for i++; i < len(raw) && raw[i] != '"'; i++ {
				if raw[i] == '\\' {
					i++
				}
			}
		case c == '[' || c == '{':
			depth++
			if depth > maxInputDepth {
				return invalidRequest(fmt.Sprintf("'input' is nested more than %d levels deep (arrays and objects within one another); the limit is %d", maxInputDepth, maxInputDepth))
			}
		case c == ']' || c == '}':
			depth--
		case c == '-' || ('0' <= c && c <= '9'):
			end := i + 1
			for end < len(raw) && isNumberByte(raw[end]) {
				end++
			}
			if err := checkInputNumber(string(raw[i:end])); err != nil {
				return err
			}
			i = end - 1
		}
	}
	return nil
}

// isNumberByte tells whether c can continue a JSON number.
func isNumberByte(c byte) bool {
	return '0' <= c && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'
}

// checkInputNumber applies checkInput's rules to one number of an input.
func checkInputNumber(n string) error {
	if !strings.ContainsAny(n, ".eE") {
		if digits := len(strings.TrimPrefix(n, "-")); digits > maxInputIntDigits {
			return invalidRequest(fmt.Sprintf("'input' holds an integer of %d digits; the limit is %d digits (send a larger one as a string)", digits, maxInputIntDigits))
		}
		return nil
	}
	// ParseFloat rounds as Python's float does: a number too small for a
	// float is zero, one too large infinite.
	if f, _ := strconv.ParseFloat(n, 64); math.IsInf(f, 0) {
		return invalidRequest(fmt.Sprintf("'input' holds the number %s, beyond the range of a float (about ±1.8e308): send it as a string", clip(json.RawMessage(n))))
	}
	return nil
}

// loneSurrogateRule is the rule a string with an escaped lone surrogate
// breaks. encoding/json would quietly make it U+FFFD, so that a name or a
// text other than the one sent would be used.
const loneSurrogateRule = `holds a lone UTF-16 surrogate escape (\ud800-\udfff not in a pair), which is no character`

// hasLoneSurrogate tells whether the JSON string raw holds a \u escape of a
// UTF-16 surrogate that is not part of a high-low pair.
func hasLoneSurrogate(raw json.RawMessage) bool {
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		if i+1 >= len(raw) || raw[i+1] != 'u' {
			i++ // a one-character escape: skip what it escapes
			continue
		}
		r, ok := escapedUnit(raw, i)
		if !ok || !utf16.IsSurrogate(r) {
			i += 5
			continue
		}
		low, ok := escapedUnit(raw, i+6)
		if r >= 0xdc00 || !ok || low < 0xdc00 || low > 0xdfff {
			return true
		}
		i += 11
	}
	return false
}

// escapedUnit reads the UTF-16 unit of the \uXXXX escape at raw[i:].
func escapedUnit(raw json.RawMessage, i int) (rune, bool) {
	if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
		return 0, false
	}
	n, err := strconv.ParseUint(string(raw[i+2:i+6]), 16, 16)
	return rune(n), err == nil
}

// isNull tells whether a member's value is JSON null. encoding/json hands
// over members' values without the whitespace around them.
func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// read reads and decodes /execute's body.
func (d decoder) read(w http.ResponseWriter, r *http.Request) (request, error) {
	body, err := d.readBody(w, r)
	if err != nil {
		return request{}, err
	}
	return d.decode(body, requestBody)
}

// readBody reads a request's body, never past its cap.
func (d decoder) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > d.maxBytes {
		return nil, bodyTooLarge(d.maxBytes)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, d.maxBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, bodyTooLarge(d.maxBytes)
		}
		return nil, invalidRequest("Could not read request body")
	}
	return body, nil
}

// decodeMessage decodes a Pub/Sub message's data, within the same cap as
// /execute's body.
func (d decoder) decodeMessage(data []byte) (request, error) {
	if int64(len(data)) > d.maxBytes {
		return request{}, invalidRequest(fmt.Sprintf("message data is larger than the service's limit of %s", size.Text(d.maxBytes, "")))
	}
	return d.decode(data, messageData)
}
