package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// roles are the commands that take Config's flags.
var roles = []string{"all", "ingest", "matcher", "signer", "delivery", "api", "nats", "rekey"}

// flagRow is a row of README's Flags table.
type flagRow struct {
	names []string // the flags the row documents, without "--"
	def   string   // the default column as written
}

// readmeFlags parses the table of README.md's "## Flags" section.
func readmeFlags(t *testing.T) []flagRow {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Flags\n")
	if !ok {
		t.Fatal(`README.md has no "## Flags" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	name := regexp.MustCompile("--([a-z][a-z0-9-]*)")
	var rows []flagRow
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `--") {
			continue
		}
		// A "|" inside a cell is written "\|".
		cells := strings.Split(strings.ReplaceAll(line, `\|`, "/"), "|")
		if len(cells) != 5 {
			t.Fatalf("Flags table row %q: want 3 cells", line)
		}
		var r flagRow
		for _, m := range name.FindAllStringSubmatch(cells[1], -1) {
			r.names = append(r.names, m[1])
		}
		r.def = strings.TrimSpace(cells[2])
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		t.Fatal("README.md's Flags section has no table rows")
	}
	return rows
}

// roleFlags returns the flags of a role as the binary registers them, with no HOOKSTREAM_*
// variable set.
func roleFlags(role string) map[string]*flag.Flag {
	var c Config
	fs := flag.NewFlagSet(role, flag.ContinueOnError)
	c.flags(fs, role)
	out := map[string]*flag.Flag{}
	fs.VisitAll(func(f *flag.Flag) { out[f.Name] = f })
	return out
}

// clearEnv unsets every flag's variable for the test (restored afterwards).
func clearEnv(t *testing.T) {
	for name := range roleFlags("all") {
		t.Setenv(envName(name), "")
		os.Unsetenv(envName(name))
	}
}

// TestFlagsTable: README's Flags table lists every flag of every role and nothing else, each
// with the all-in-one's default (or its role's, for a flag the all-in-one does not have).
func TestFlagsTable(t *testing.T) {
	clearEnv(t)
	rows := readmeFlags(t)
	documented := map[string]string{}
	for _, r := range rows {
		for _, n := range r.names {
			if _, dup := documented[n]; dup {
				t.Errorf("--%s has two rows", n)
			}
			documented[n] = r.def
		}
	}
	missing := map[string][]string{} // flag → the roles that have it
	for _, role := range roles {
		for name := range roleFlags(role) {
			if _, ok := documented[name]; !ok {
				missing[name] = append(missing[name], role)
			}
		}
	}
	for name, in := range missing {
		t.Errorf("--%s (of %s) is missing from README's Flags table", name, strings.Join(in, ", "))
	}
	// The all-in-one's default, or for a flag of other roles only (the nats role's cluster
	// flags), that role's.
	all := roleFlags("all")
	for _, role := range roles {
		for name, f := range roleFlags(role) {
			if _, ok := all[name]; !ok {
				all[name] = f
			}
		}
	}
	for name, def := range documented {
		f, ok := all[name]
		if !ok {
			t.Errorf("README's Flags table documents --%s, which the binary does not have", name)
			continue
		}
		if !sameDefault(def, f.DefValue) {
			t.Errorf("--%s: README's default %q, the binary's %q", name, def, f.DefValue)
		}
	}
}

// sameDefault reports whether a default as the table writes it ("`2m`", "off (…)", "—") is the
// flag's default value.
func sameDefault(written, value string) bool {
	if strings.HasPrefix(written, "—") || strings.HasPrefix(written, "off") {
		return value == "" || value == "false"
	}
	m := regexp.MustCompile("^`([^`]*)`").FindStringSubmatch(written)
	if m == nil {
		return false
	}
	if m[1] == value {
		return true
	}
	if a, err := time.ParseDuration(m[1]); err == nil {
		b, err := time.ParseDuration(value)
		return err == nil && a == b
	}
	a, errA := strconv.ParseFloat(m[1], 64)
	b, errB := strconv.ParseFloat(value, 64)
	return errA == nil && errB == nil && a == b
}

// TestFlagsEnv: every flag is set by the variable README's Flags section names for it, and every
// HOOKSTREAM_ variable README mentions is one the binary reads.
func TestFlagsEnv(t *testing.T) {
	clearEnv(t)
	parse := func() Config {
		var c Config
		fs := flag.NewFlagSet("all", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c.flags(fs, "all")
		if err := applyEnv(fs); err != nil {
			t.Fatal(err)
		}
		if err := fs.Parse(nil); err != nil {
			t.Fatal(err)
		}
		return c
	}
	base := parse()
	flags := roleFlags("all")
	for name, f := range flags {
		t.Run(name, func(t *testing.T) {
			t.Setenv(envName(name), sampleValue(f))
			if reflect.DeepEqual(parse(), base) {
				t.Errorf("%s=%s did not change the configuration", envName(name), sampleValue(f))
			}
		})
	}

	// Variables read other than through a flag are named in the package's source.
	var src strings.Builder
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	byEnv := map[string]bool{}
	for name := range flags {
		byEnv[envName(name)] = true
	}
	for _, v := range regexp.MustCompile(`HOOKSTREAM_[A-Z][A-Z0-9_]*[A-Z0-9]`).FindAllString(string(readme), -1) {
		if !byEnv[v] && !strings.Contains(src.String(), `"`+v+`"`) {
			t.Errorf("README names %s, which hookstream does not read", v)
		}
	}
}

// sampleValue is a value for f's variable that differs from its default.
func sampleValue(f *flag.Flag) string {
	if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
		return "true"
	}
	if _, err := strconv.ParseFloat(f.DefValue, 64); err == nil {
		return "7"
	}
	if _, err := time.ParseDuration(f.DefValue); err == nil {
		return "7m"
	}
	if f.Name == "allow-cidr" {
		return "10.9.0.0/16"
	}
	return "sample-" + f.Name
}
