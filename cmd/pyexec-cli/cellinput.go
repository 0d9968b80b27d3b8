package main

import (
	"strings"
)

// cellComplete reports whether lines, typed one by one at the REPL's
// prompt, make a whole cell, with the rules of Python's own REPL made
// simple:
//
//   - a line inside an open bracket or triple-quoted string, or ending
//     with a backslash, continues;
//   - a cell with a line ending in ":" (def, for, if, with, class, ...) is
//     a block, which a blank line ends;
//   - anything else is whole at the end of its line.
//
// It reads Python only as far as brackets, strings and comments go; what
// it gets wrong the service answers as a syntax error.
func cellComplete(lines []string) bool {
	if len(lines) == 0 {
		return false
	}
	last := lines[len(lines)-1]
	if strings.HasSuffix(strings.TrimRight(last, " \t"), `\`) {
		return false
	}
	open, block := scanPython(strings.Join(lines, "\n"))
	if open {
		return false
	}
	return !block || (len(lines) > 1 && strings.TrimSpace(last) == "")
}

// scanPython reports whether code ends inside a bracket or a
// triple-quoted string (open), and whether one of its lines ends with ":"
// outside brackets, strings and comments, beginning a block (block).
func scanPython(code string) (open, block bool) {
	depth := 0
	quote := ""     // the open string's quote: ', ", ''' or """
	var lastCh rune // the line's last character outside strings and comments
	endLine := func() {
		if depth == 0 && lastCh == ':' {
			block = true
		}
		lastCh = 0
	}
	rs := []rune(code)
	for i := 0; i < len(rs); i++ {
		ch := rs[i]
		if quote != "" {
			switch {
			case ch == '\\':
				i++ // the escaped character, a newline included
			case ch == '\n' && len(quote) == 1:
				quote = "" // an unclosed one-line string: the service says so
				endLine()
			case strings.HasPrefix(string(rs[i:]), quote):
				i += len(quote) - 1
				quote = ""
				lastCh = '"'
			}
			continue
		}
		switch ch {
		case '#':
			for i+1 < len(rs) && rs[i+1] != '\n' {
				i++
			}
		case '\'', '"':
			quote = string(ch)
			if triple := strings.Repeat(string(ch), 3); strings.HasPrefix(string(rs[i:]), triple) {
				quote = triple
				i += 2
			}
		case '(', '[', '{':
			depth++
			lastCh = ch
		case ')', ']', '}':
			depth = max(depth-1, 0)
			lastCh = ch
		case '\n':
			endLine()
		case ' ', '\t', '\r':
		default:
			lastCh = ch
		}
	}
	endLine()
	return depth > 0 || len(quote) == 3, block
}
