package reports

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

// minimal is the smallest document ReadJSON accepts, with %s for its cells.
const minimal = `{"schema": 1, "kind": "run", "tool": {"version": "0.1.0"}, "started": "2026-01-02T03:04:05Z", "cells": [%s]}`

func withCells(cells string) string { return strings.Replace(minimal, "%s", cells, 1) }

func TestReadJSONRefusesWhatIsNotAResult(t *testing.T) {
	fixture, err := os.ReadFile(fixturePath)
	if err != nil {
		t.Fatal(err)
	}
	const cell = `{"scenario": "oversell", "backend": "goredis", "strategy": "lua", "verdict": "PASS"}`
	for _, tc := range []struct {
		name, in string
		want     error  // nil: accepted
		msg      string // the error after "x.json "
	}{
		{"fixture", string(fixture), nil, ""},
		{"no cells", withCells(""), nil, ""},
		{"a cell", withCells(cell), nil, ""},
		{"unknown verdict of a later build", withCells(`{"operation": "stock.deduct", "backend": "b", "strategy": "s", "verdict": "SOMETHING-NEW"}`), nil, ""},
		{"unknown fields", strings.Replace(withCells(cell), `"schema": 1`, `"schema": 1, "later": {"x": 1}`, 1), nil, ""},
		{"empty", "  \n", ErrNotJSON, "is not JSON: it is empty"},
		{"text", "hello", ErrNotJSON, "is not JSON: line 1: invalid character 'h' looking for beginning of value"},
		{"bad line 3", "{\n\"schema\": 1,\n\"kind\" \"run\"}", ErrNotJSON, "is not JSON: line 3: invalid character"},
		{"truncated", `{"schema": 1, "kind": "ru`, ErrNotJSON, "is not JSON: line 1: unexpected end of JSON input"},
		{"two documents", withCells("") + withCells(""), ErrNotJSON, "after top-level value"},
		{"array", `[{"schema": 1}]`, ErrNotResult, "is not a paybench result (a JSON array, not an object)"},
		{"number", `42`, ErrNotResult, "is not a paybench result (a JSON number, not an object)"},
		{"null", `null`, ErrNotResult, "is not a paybench result (JSON null, not an object)"},
		{"empty object", `{}`, ErrNotResult, `is not a paybench result (no "schema", "kind", "tool" or "started" field)`},
		{"schema only", `{"schema": 1}`, ErrNotResult, `is not a paybench result (no "kind", "tool" or "started" field)`},
		{"another tool's kind", `{"apiVersion": "v1", "kind": "Pod"}`, ErrNotResult, `is not a paybench result (no "schema", "tool" or "started" field)`},
		{"null kind", strings.Replace(withCells(""), `"kind": "run"`, `"kind": null`, 1), ErrNotResult, `(no "kind" field)`},
		{"unknown kind", strings.Replace(withCells(""), `"kind": "run"`, `"kind": "pod"`, 1), ErrNotResult,
			`is not a paybench result ("kind" is "pod", want run, load or suite)`},
		{"schema 0", strings.Replace(withCells(""), `"schema": 1`, `"schema": 0`, 1), ErrNotResult, `("schema" is 0; this build reads 1)`},
		{"schema 1.5", strings.Replace(withCells(""), `"schema": 1`, `"schema": 1.5`, 1), ErrNotResult, `("schema" is 1.5; this build reads 1)`},
		{"schema text", strings.Replace(withCells(""), `"schema": 1`, `"schema": "one"`, 1), ErrNotResult, `("schema" is "one", not a number)`},
		{"newer schema", strings.Replace(withCells(""), `"schema": 1`, `"schema": 2`, 1), ErrNewerSchema,
			"was written by a newer paybench (schema 2, this build reads 1): upgrade paybench to read it"},
		{"newer schema without started", `{"schema": 7, "tool": {"version": "9.0.0"}, "run": {}}`, ErrNewerSchema, "(schema 7, this build reads 1)"},
		{"wrong type", strings.Replace(withCells(""), `"cells": []`, `"cells": {}`, 1), ErrNotResult, "is not a paybench result: json: cannot unmarshal object"},
		{"cell without backend", withCells(cell + `, {"scenario": "oversell", "strategy": "lua", "verdict": "PASS"}`), ErrNotResult,
			`is not a paybench result: cells[1] (oversell/lua) has no "backend"`},
		{"cell without strategy and verdict", withCells(`{"operation": "stock.deduct", "backend": "rueidis"}`), ErrNotResult,
			`cells[0] (stock.deduct/rueidis) has no "strategy", no "verdict"`},
		{"cell without a name", withCells(`{"backend": "rueidis", "strategy": "lua", "verdict": "PASS"}`), ErrNotResult,
			`cells[0] (rueidis/lua) has no "scenario" or "operation"`},
		{"empty cell", withCells(`{}`), ErrNotResult, `cells[0] has no "scenario" or "operation", no "backend", no "strategy", no "verdict"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := ReadJSON(strings.NewReader(tc.in), "x.json")
			if tc.want == nil {
				if err != nil || doc == nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "x.json ") || !strings.Contains(msg, tc.msg) || strings.Contains(msg, "\n") {
				t.Errorf("error %q, want one line starting with x.json and containing %q", msg, tc.msg)
			}
		})
	}
}

func TestRequireCells(t *testing.T) {
	doc, err := ReadJSON(strings.NewReader(withCells("")), "x.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := RequireCells(doc, "x.json"); !errors.Is(err, ErrNoCells) || err.Error() != "x.json has no cells" {
		t.Errorf("no cells: %v", err)
	}
	doc.Interrupted = true
	if err := RequireCells(doc, "x.json"); err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("interrupted, no cells: %v", err)
	}
	if err := RequireCells(readFixture(t), fixturePath); err != nil {
		t.Errorf("fixture: %v", err)
	}
}

// TestWriteJSONReadsBack checks that what WriteJSON writes ReadJSON reads.
func TestWriteJSONReadsBack(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, readFixture(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadJSON(&buf, "buf"); err != nil {
		t.Fatal(err)
	}
}
