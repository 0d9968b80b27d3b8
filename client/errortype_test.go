package client

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The client names every error type the service answers with, and no
// other: the service's are the constants of type executor.ErrorType in the
// executor and in the HTTP transport, read from their source.
func TestErrorTypesAreTheServices(t *testing.T) {
	service := stringConsts(t, []string{"../executor/*.go", "../*.go"}, func(spec *ast.ValueSpec) bool {
		switch typ := spec.Type.(type) {
		case *ast.Ident:
			return typ.Name == "ErrorType"
		case *ast.SelectorExpr:
			return typ.Sel.Name == "ErrorType"
		}
		return false
	})
	client := stringConsts(t, []string{"*.go"}, func(spec *ast.ValueSpec) bool {
		return strings.HasPrefix(spec.Names[0].Name, "ErrorType")
	})
	if len(service) == 0 {
		t.Fatal("found no error types in the service's source")
	}
	if !slices.Equal(client, service) {
		t.Errorf("client error types %q\nservice's          %q", client, service)
	}
}

// stringConsts are the sorted values of the string constants, in the
// non-test Go files matching patterns, whose specs match keep.
func stringConsts(t *testing.T, patterns []string, keep func(*ast.ValueSpec) bool) []string {
	t.Helper()
	var values []string
	for _, pattern := range patterns {
		files, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, decl := range f.Decls {
				gen, ok := decl.(*ast.GenDecl)
				if !ok || gen.Tok != token.CONST {
					continue
				}
				for _, spec := range gen.Specs {
					vs := spec.(*ast.ValueSpec)
					if !keep(vs) {
						continue
					}
					for _, v := range vs.Values {
						if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
							s, err := strconv.Unquote(lit.Value)
							if err != nil {
								t.Fatal(err)
							}
							values = append(values, s)
						}
					}
				}
			}
		}
	}
	slices.Sort(values)
	return values
}
