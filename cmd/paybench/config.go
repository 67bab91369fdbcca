package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// configFlag is the flag of run, load and suite that reads the other
// flags from a file.
const configFlag = "config"

// applyConfig sets, from the file the --config flag names (if fs has
// one and it is set), every flag the command line did not set: flags on
// the command line win over the file. The file is YAML or JSON (JSON is
// YAML): one mapping whose keys are flag names as the command line spells
// them without the dashes ("redis-url", "concurrency") and whose values
// are what the flag takes — a string, a number or a boolean, or a list
// for a repeatable flag (gate, fault). A section named after a command
// (run, load, suite) holds settings for that command only, which win over
// the file's top level; the other commands' sections are skipped. A key
// that is not a flag of the command, a value a flag refuses, or a file
// that cannot be read is a usage error that names the file and the key.
func applyConfig(fs *pflag.FlagSet) error {
	cf := fs.Lookup(configFlag)
	if cf == nil || cf.Value.String() == "" {
		return nil
	}
	path := cf.Value.String()
	settings, err := readConfig(path)
	if err != nil {
		return usageErrorf("--config %s: %w", path, err)
	}
	if settings, err = forCommand(settings, fs.Name()); err != nil {
		return usageErrorf("--config %s: %w", path, err)
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := fs.Lookup(k)
		if f == nil || k == configFlag || k == "help" {
			return usageErrorf("--config %s: unknown key %q: not a flag of paybench %s (see paybench %s -h)", path, k, fs.Name(), fs.Name())
		}
		if fs.Changed(k) {
			continue // the command line wins
		}
		values, err := configValues(settings[k], repeatable(f))
		if err != nil {
			return usageErrorf("--config %s: %s: %w", path, k, err)
		}
		for _, v := range values {
			if err := fs.Set(k, v); err != nil {
				return usageErrorf("--config %s: %s: %w", path, k, err)
			}
		}
	}
	return nil
}

// configCommands are the commands whose sections a config file may hold.
var configCommands = []string{"run", "load", "suite"}

// forCommand returns the settings for command: the top level's, the
// command's own section over them; other commands' sections are dropped.
func forCommand(settings map[string]any, command string) (map[string]any, error) {
	out := make(map[string]any, len(settings))
	var own map[string]any
	for k, v := range settings {
		if !contains(configCommands, k) {
			out[k] = v
			continue
		}
		section, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("section %q: want a mapping of flag names to values", k)
		}
		if k == command {
			own = section
		}
	}
	for k, v := range own {
		if contains(configCommands, k) {
			return nil, fmt.Errorf("section %q: a section inside a section (%q)", command, k)
		}
		out[k] = v
	}
	return out, nil
}

// readConfig reads a YAML or JSON mapping of flag names to values.
func readConfig(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	var settings map[string]any
	if err := yaml.Unmarshal(b, &settings); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			if strings.Contains(err.Error(), "cannot unmarshal") {
				return nil, errors.New("want a mapping of flag names to values")
			}
			return nil, fmt.Errorf("not valid: %s", strings.Join(te.Errors, "; "))
		}
		return nil, fmt.Errorf("not YAML or JSON: %s", oneLine(err.Error()))
	}
	return settings, nil
}

// repeatable reports whether a flag takes a list (a string array or
// slice: --gate, --fault).
func repeatable(f *pflag.Flag) bool {
	t := f.Value.Type()
	return strings.HasSuffix(t, "Array") || strings.HasSuffix(t, "Slice")
}

// configValues turns one value of the file into the flag's arguments:
// one for a scalar, one per item of a list (a repeatable flag only).
func configValues(v any, list bool) ([]string, error) {
	if items, ok := v.([]any); ok {
		if !list {
			return nil, errors.New("a list, for a flag that takes one value")
		}
		out := make([]string, 0, len(items))
		for _, it := range items {
			s, err := configScalar(it)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	s, err := configScalar(v)
	if err != nil {
		return nil, err
	}
	return []string{s}, nil
}

// configScalar renders a scalar of the file as the command line would
// spell it.
func configScalar(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case nil:
		return "", errors.New("no value")
	}
	return "", fmt.Errorf("want a string, a number or a boolean, not %T", v)
}
