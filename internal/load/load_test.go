package load

import "testing"

func TestCheckURLAllowsOnlyLoopback(t *testing.T) {
	for _, tt := range []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:8080", true},
		{"http://[::1]:8080", true},
		{"http://localhost:8080", true},
		{"https://127.0.0.1:8080", false},
		{"http://127.0.0.2:8080", false},
		{"http://10.0.0.1:8080", false},
		{"http://example.com", false},
		{"http://169.254.169.254", false},
		{"http://0.0.0.0:8080", false},
		{"http://localhost.example.com", false},
	} {
		if err := CheckURL(tt.url); (err == nil) != tt.ok {
			t.Errorf("CheckURL(%q) = %v, want ok=%v", tt.url, err, tt.ok)
		}
	}
}

func TestParseMixNamesOnlyKnownClasses(t *testing.T) {
	if _, err := ParseMix("good=1,evil=2"); err == nil {
		t.Error("ParseMix accepted an unknown class")
	}
	mix, err := ParseMix("good=6,failing=2,hostile=2")
	if err != nil || mix["hostile"] != 2 {
		t.Errorf("ParseMix = %v, %v", mix, err)
	}
}
