package client

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pyexec/pyexec/api"
)

// The client names every error type the service answers with, and no
// other. The service's are the ErrorType enum of its OpenAPI document,
// which api's own tests hold equal to the error types in the service's
// code; the client's are its ErrorType constants, read from its source.
func TestErrorTypesAreTheServices(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas struct {
				ErrorType struct {
					Enum []string `json:"enum"`
				} `json:"ErrorType"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(api.OpenAPIJSON(), &doc); err != nil {
		t.Fatalf("decoding the OpenAPI document: %v", err)
	}
	service := slices.Sorted(slices.Values(doc.Components.Schemas.ErrorType.Enum))
	if len(service) == 0 {
		t.Fatal("the OpenAPI document has no ErrorType enum")
	}
	client := errorTypeConstants(t)
	if !slices.Equal(client, service) {
		t.Errorf("client error types %q\nservice's          %q", client, service)
	}
}

// errorTypeConstants are the sorted values of the package's string
// constants named ErrorType*, read from its non-test Go files.
func errorTypeConstants(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var values []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.SkipObjectResolution)
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
				for i, v := range vs.Values {
					lit, ok := v.(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING || !strings.HasPrefix(vs.Names[i].Name, "ErrorType") {
						continue
					}
					s, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					values = append(values, s)
				}
			}
		}
	}
	slices.Sort(values)
	return values
}
