package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Every flag of a process has a HOOKSTREAM_* variable (envName). The flags register with the
// variable's value as their default, so -h shows what applies; applyEnv then sets each flag
// from its variable through the flag's own parser, before the command line, so that a value the
// flag would refuse on the command line is refused in the environment too, naming the variable,
// instead of leaving the setting at its default (a typo in a quota would otherwise mean
// unlimited).

// envName is the variable of a flag: HOOKSTREAM_ and the flag's name in capitals, "_" for "-".
func envName(flagName string) string {
	return "HOOKSTREAM_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets every flag of fs whose variable is set. An empty variable counts as unset,
// except for a string flag, which it sets to "". Booleans also take yes/no and on/off. Every
// malformed variable is reported, each naming the variable, the flag and what it wants.
func applyEnv(fs *flag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		v, ok := os.LookupEnv(name)
		if !ok || (v == "" && !isStringFlag(f)) {
			return
		}
		if isBoolFlag(f) {
			v = boolWord(v)
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, envError(name, v, f, err))
		}
	})
	return errors.Join(errs...)
}

// envError says what is wrong with the value v of the variable name of flag f, which f's parser
// refused with err.
func envError(name, v string, f *flag.Flag, err error) error {
	// The flag package's own parsers say only "parse error"; what the flag wants says more.
	if err.Error() == "parse error" {
		return fmt.Errorf("%s=%q: want %s (it sets --%s)", name, v, wants(f), f.Name)
	}
	return fmt.Errorf("%s=%q: want %s (it sets --%s): %w", name, v, wants(f), f.Name, err)
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func isStringFlag(f *flag.Flag) bool {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return false
	}
	_, s := g.Get().(string)
	return s
}

// boolWord maps yes/no and on/off to what strconv.ParseBool takes; anything else is left to it.
func boolWord(v string) string {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "yes", "on":
		return "true"
	case "no", "off":
		return "false"
	}
	return v
}

// wants says in words what kind of value a flag takes.
func wants(f *flag.Flag) string {
	if isBoolFlag(f) {
		return "true or false"
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return "a valid value"
	}
	switch g.Get().(type) {
	case int, int64, uint, uint64:
		return "a whole number"
	case float64:
		return "a number"
	case time.Duration:
		return "a duration such as 90s, 10m or 2h"
	}
	return "a valid value"
}

// env is the value of HOOKSTREAM_{name}, or def when it is not set.
func env(name, def string) string {
	if v, ok := os.LookupEnv("HOOKSTREAM_" + name); ok {
		return v
	}
	return def
}

// envBool, envDuration, envFloat and envIntOr give flags their defaults from the environment;
// a value they cannot read leaves the default, and applyEnv then refuses it.

func envBool(name string) bool {
	b, _ := strconv.ParseBool(boolWord(env(name, "")))
	return b
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(env(name, "")); err == nil {
		return d
	}
	return def
}

func envFloat(name string, def float64) float64 {
	if f, err := strconv.ParseFloat(env(name, ""), 64); err == nil {
		return f
	}
	return def
}

func envInt(name string) int64 { return envIntOr(name, 0) }

func envIntOr(name string, def int64) int64 {
	if n, err := strconv.ParseInt(env(name, ""), 0, 64); err == nil {
		return n
	}
	return def
}
