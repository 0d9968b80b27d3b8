package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"unicode/utf8"
)

// maxBodyBytes caps what is read of an /execute request body.
const maxBodyBytes = 1 << 20

// request is what a caller asks to run. /execute's body and ExecuteEvent's
// message data carry the same JSON object, and decodeRequest is the one
// decoder of both: a field of that object is added here, once.
type request struct {
	script string
	// callerID is the message data's optional "id", which ExecuteEvent
	// logs and publishes with the outcome. /execute ignores an "id" like
	// any other unknown field.
	callerID string
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

// decodeRequest decodes a request object. On an error it returns the
// fields read so far, so that a caller ID is logged even when the script is
// missing. Whether the script is blank, too large or has a main is the
// executor's to say.
func decodeRequest(data []byte, p payload) (request, error) {
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
	if isNull(raw) || json.Unmarshal(raw, &req.script) != nil {
		return req, invalidRequest(p.badScript)
	}
	return req, nil
}

// isNull tells whether a member's value is JSON null. encoding/json hands
// over members' values without the whitespace around them.
func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// readRequest reads and decodes /execute's body, never past its cap.
func readRequest(w http.ResponseWriter, r *http.Request) (request, error) {
	if r.ContentLength > maxBodyBytes {
		return request{}, errBodyTooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return request{}, errBodyTooLarge
		}
		return request{}, invalidRequest("Could not read request body")
	}
	return decodeRequest(body, requestBody)
}
