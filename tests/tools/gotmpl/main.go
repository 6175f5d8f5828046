// gotmpl — reference renderer for qqmgr's tmpl module: Go's text/template.
//
// Usage: gotmpl TEMPLATE_FILE DATA_JSON_FILE
// Prints the rendering (exact bytes) on stdout, or the error on stderr and
// exits 1. The template is named after the file's base name, numbers in the
// data become int64 when integral (no '.', 'e', 'E') and float64 otherwise, the
// same types qqmgr's C implementation sees, and a missing map key is an error
// (Option("missingkey=error")). JSON has no nan or inf: an object
// {"$float": "nan"} ("inf", "-inf") stands for that float64.
// Standard library only, so it builds offline.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
)

func convert(v any) any {
	switch x := v.(type) {
	case json.Number:
		s := string(x)
		if !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				return i
			}
		}
		f, _ := strconv.ParseFloat(s, 64)
		return f
	case map[string]any:
		if f, ok := x["$float"].(string); ok && len(x) == 1 {
			v, _ := strconv.ParseFloat(f, 64)
			return v
		}
		for k, e := range x {
			x[k] = convert(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = convert(e)
		}
		return x
	}
	return v
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: gotmpl TEMPLATE_FILE DATA_JSON_FILE")
		os.Exit(2)
	}
	text, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	raw, err := os.ReadFile(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var data any
	if err := dec.Decode(&data); err != nil {
		fmt.Fprintln(os.Stderr, "data:", err)
		os.Exit(2)
	}
	data = convert(data)
	t, err := template.New(filepath.Base(os.Args[1])).Option("missingkey=error").Parse(string(text))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var out bytes.Buffer
	if err := t.Execute(&out, data); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Stdout.Write(out.Bytes())
}
