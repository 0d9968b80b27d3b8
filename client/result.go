package client

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/pyexec/pyexec/api"
)

// Result is a successful execution.
type Result struct {
	// Value is what main returned, as the JSON the service sent: numbers
	// are exact, big integers included. Decode unmarshals it.
	Value json.RawMessage
	// Stdout is everything the script printed, trailing newlines removed.
	Stdout string
	// Files are the regular files the script left under outputs/, sorted by
	// path.
	Files []OutputFile
	// Display are the rich outputs the script displayed (figures, tables,
	// texts), in the order produced.
	Display []Display
	// ExecutionID names the execution in the service's log (the
	// X-Execution-Id header).
	ExecutionID string
	// Duration is the time Execute took, measured by the client: the whole
	// call, including any retries and the waits between them.
	Duration time.Duration
	// Body is the answer's body exactly as received.
	Body []byte
}

// Decode unmarshals the script's return value into v, as json.Unmarshal
// does. To keep numbers exact, decode into json.Number or json.RawMessage
// fields rather than float64.
func (r *Result) Decode(v any) error {
	if err := json.Unmarshal(r.Value, v); err != nil {
		return fmt.Errorf("pyexec: decoding result: %w", err)
	}
	return nil
}

// OutputFile is a file the script left under outputs/.
type OutputFile struct {
	// Path is relative to the script's working directory, e.g.
	// "outputs/out.csv". It comes from the service: check it (for example
	// with filepath.IsLocal, or by writing through an os.Root) before using
	// it as a local path.
	Path string
	// Content is the file's content, decoded.
	Content []byte
}

// Display is one rich output.
type Display struct {
	// Type is its MIME type: "image/png", "text/html" or "text/plain".
	Type string
	// Data is the PNG's bytes, decoded, or the text.
	Data []byte
}

// displayItems decodes the rich outputs of an answer.
func displayItems(items []api.DisplayItem) ([]Display, error) {
	var out []Display
	for i, d := range items {
		data := []byte(d.Data)
		if d.Type == "image/png" {
			var err error
			if data, err = base64.StdEncoding.DecodeString(d.Data); err != nil {
				return nil, fmt.Errorf("display item %d: bad base64: %w", i, err)
			}
		}
		out = append(out, Display{Type: d.Type, Data: data})
	}
	return out, nil
}

// outputFiles decodes the files of an answer, checking each against the
// size the service stated.
func outputFiles(files []api.OutputFile) ([]OutputFile, error) {
	var out []OutputFile
	for _, f := range files {
		var content []byte
		switch f.Encoding {
		case api.EncodingBase64:
			var err error
			if content, err = base64.StdEncoding.DecodeString(f.Content); err != nil {
				return nil, fmt.Errorf("output file %q: bad base64: %w", f.Path, err)
			}
		case api.EncodingUTF8, "":
			content = []byte(f.Content)
		default:
			return nil, fmt.Errorf("output file %q: unknown encoding %q", f.Path, f.Encoding)
		}
		if len(content) != f.Bytes {
			return nil, fmt.Errorf("output file %q: %d bytes, but the answer says %d", f.Path, len(content), f.Bytes)
		}
		out = append(out, OutputFile{Path: f.Path, Content: content})
	}
	return out, nil
}
