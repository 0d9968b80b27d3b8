package main

import (
	"strings"
	"testing"
)

func TestCellComplete(t *testing.T) {
	tests := []struct {
		name  string
		lines string // joined by newlines
		want  bool
	}{
		{"an expression", "df.a.sum()", true},
		{"a statement", "import pandas as pd, io", true},
		{"a def without its body", "def f(x):", false},
		{"a def's body", "def f(x):\n    return x * 2", false},
		{"a def ended by a blank line", "def f(x):\n    return x * 2\n", true},
		{"a blank line in a block that is inside a bracket", "def f(x):\n    return (x\n", false},
		{"a colon in a comment begins no block", "x = 1  # note:", true},
		{"a colon in a string begins no block", "s = 'a:'", true},
		{"a dict left open", "d = {'a':", false},
		{"a dict closed", "d = {'a':\n 1}", true},
		{"a call across lines", "f(1,\n  2", false},
		{"a bracket in a string opens nothing", "s = '('", true},
		{"a backslash continues", `x = 1 + \`, false},
		{"after the backslash", "x = 1 + \\\n  2", true},
		{"an open triple-quoted string", `s = """a`, false},
		{"a closed triple-quoted string", "s = \"\"\"a\n(b\"\"\"", true},
		{"an escaped quote stays in the string", `s = 'it\'s ('`, true},
		{"a for loop", "for i in range(3):\n    print(i)\n", true},
		{"a slice is no block", "x = a[1:]", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cellComplete(strings.Split(tt.lines, "\n")); got != tt.want {
				t.Errorf("cellComplete(%q) = %v, want %v", tt.lines, got, tt.want)
			}
		})
	}
}
