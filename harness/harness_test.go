package harness

import (
	"bytes"
	"fmt"
	"testing"
)

// The executor waits for Preloaded; harness.py must write that very byte.
func TestPreloadedIsHarnessPysByte(t *testing.T) {
	want := fmt.Sprintf("\nPRELOADED = b%q\n", string(Preloaded))
	if !bytes.Contains(Source, []byte(want)) {
		t.Errorf("harness.py does not define %q", want)
	}
}
