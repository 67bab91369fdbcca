// Package faults schedules faults during a cell: a server that stalls,
// connections killed, a restart, a full memory, a slow or broken network.
// A schedule is a list of Specs parsed from the --fault grammar; Start
// applies it relative to a cell's start and Stop ends what is still active
// and returns the log of what happened, with actual times.
package faults

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/paybench/paybench/reports/result"
)

// Fault kinds.
const (
	// Pause: the server stops answering for Arg (a spawned server:
	// SIGSTOP/SIGCONT; a server given by URL: CLIENT PAUSE ... ALL).
	Pause = "pause"
	// KillConns: the connections of the clients under test are killed
	// (CLIENT KILL ID, never the admin client's), once or every Every.
	KillConns = "kill-conns"
	// Restart: a spawned server is killed (SIGKILL) and started again on
	// its port; its data survives only with persistence on.
	Restart = "restart"
	// OOM: maxmemory is set just above the memory used, with noeviction,
	// and restored after For (or at the cell's end).
	OOM = "oom"
	// Latency: Arg is added to each reply, through the in-process proxy,
	// for For (or until the cell's end).
	Latency = "latency"
	// Reset: the proxy resets every client connection, once or every
	// Every.
	Reset = "reset"
	// Reshard: on a Redis Cluster, the slots holding the cell's keys are
	// moved from the master holding most of them to another master
	// (CLUSTER SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE), while
	// the cell runs; they stay there.
	Reshard = "reshard"
	// Failover: on a Redis Cluster, the replica of the master holding
	// most of the cell's keys is promoted in its place (CLUSTER FAILOVER);
	// with Mode "force" (a spawned cluster) the master is stopped first
	// and the replica takes over without its agreement (CLUSTER FAILOVER
	// TAKEOVER), then the old master is resumed and rejoins as a replica.
	Failover = "failover"
	// ForceMode is Failover's forced mode (failover:force@AT).
	ForceMode = "force"
)

// Kinds lists the fault kinds.
func Kinds() []string {
	return []string{Pause, KillConns, Restart, OOM, Latency, Reset, Reshard, Failover}
}

// ClusterKinds lists the fault kinds that act on a Redis Cluster, and
// only there.
func ClusterKinds() []string { return []string{Reshard, Failover} }

// IsCluster reports whether the spec acts on a Redis Cluster.
func (s Spec) IsCluster() bool { return slices.Contains(ClusterKinds(), s.Kind) }

// Grammar is the --fault grammar, for help texts.
const Grammar = `  pause:DUR@AT            the server stops answering for DUR from AT
  kill-conns@AT[/EVERY]   kill the connections of the clients under test, once or every EVERY
  restart@AT              kill a spawned server (SIGKILL) and start it again on its port
  oom@AT[+DUR]            maxmemory just above used memory (noeviction), for DUR or to the end
  latency:DELAY@AT[+DUR]  add DELAY to each reply (in-process proxy), for DUR or to the end
  reset@AT[/EVERY]        reset every client connection (in-process proxy), once or every EVERY
  reshard@AT              Redis Cluster: move the slots of the cell's keys to another master
  failover[:force]@AT     Redis Cluster: promote the replica of the master holding the cell's keys
                          (force: stop that master first, TAKEOVER; a spawned cluster only)
AT, DUR, DELAY and EVERY are Go durations (500ms, 2s) relative to the cell's start.`

// Spec is one scheduled fault.
type Spec struct {
	// Kind is one of Kinds.
	Kind string
	// Arg is the pause's length or the latency's delay (0 for the others).
	Arg time.Duration
	// At is when the fault starts, from the cell's start.
	At time.Duration
	// For is how long an oom or latency fault lasts (0: to the cell's
	// end).
	For time.Duration
	// Every repeats a kill-conns or reset fault (0: once).
	Every time.Duration
	// Mode is a failover's mode: "" (agreed) or ForceMode.
	Mode string
}

// minEvery bounds how often a fault may repeat.
const minEvery = 10 * time.Millisecond

// String returns the spec in the grammar it was parsed from.
func (s Spec) String() string {
	var b strings.Builder
	b.WriteString(s.Kind)
	if s.Kind == Pause || s.Kind == Latency {
		b.WriteString(":" + s.Arg.String())
	}
	if s.Mode != "" {
		b.WriteString(":" + s.Mode)
	}
	b.WriteString("@" + s.At.String())
	if s.For > 0 {
		b.WriteString("+" + s.For.String())
	}
	if s.Every > 0 {
		b.WriteString("/" + s.Every.String())
	}
	return b.String()
}

// NeedsProxy reports whether the fault works through the in-process proxy.
func (s Spec) NeedsProxy() bool { return s.Kind == Latency || s.Kind == Reset }

// Parse parses one --fault SPEC.
func Parse(text string) (Spec, error) {
	var s Spec
	head, when, ok := strings.Cut(strings.TrimSpace(text), "@")
	if !ok {
		return s, fmt.Errorf("fault %q: no @AT (e.g. pause:1s@2s)", text)
	}
	kind, arg, hasArg := strings.Cut(head, ":")
	s.Kind = kind
	switch kind {
	case Pause, Latency:
		if !hasArg {
			return s, fmt.Errorf("fault %q: %s needs a duration (%s:DUR@AT)", text, kind, kind)
		}
		d, err := duration(arg)
		if err != nil || d <= 0 {
			return s, fmt.Errorf("fault %q: %s needs a positive duration, got %q", text, kind, arg)
		}
		s.Arg = d
	case Failover:
		if hasArg && arg != ForceMode {
			return s, fmt.Errorf("fault %q: failover takes no argument but %q (failover@AT or failover:%s@AT)", text, ForceMode, ForceMode)
		}
		if hasArg {
			s.Mode = ForceMode
		}
	case KillConns, Restart, OOM, Reset, Reshard:
		if hasArg {
			return s, fmt.Errorf("fault %q: %s takes no :ARG", text, kind)
		}
	default:
		return s, fmt.Errorf("fault %q: unknown kind %q (known: %s)", text, kind, strings.Join(Kinds(), ", "))
	}
	at, rest := when, ""
	if i := strings.IndexAny(when, "+/"); i >= 0 {
		at, rest = when[:i], when[i:]
	}
	d, err := duration(at)
	if err != nil || d < 0 {
		return s, fmt.Errorf("fault %q: AT must be a duration >= 0, got %q", text, at)
	}
	s.At = d
	if rest != "" {
		v, err := duration(rest[1:])
		if err != nil || v <= 0 {
			return s, fmt.Errorf("fault %q: %q must be a positive duration", text, rest)
		}
		switch {
		case rest[0] == '+' && (kind == OOM || kind == Latency):
			s.For = v
		case rest[0] == '/' && (kind == KillConns || kind == Reset):
			if v < minEvery {
				return s, fmt.Errorf("fault %q: repeating more often than every %s is not a fault but a flood", text, minEvery)
			}
			s.Every = v
		case rest[0] == '+':
			return s, fmt.Errorf("fault %q: %s takes no +DUR", text, kind)
		default:
			return s, fmt.Errorf("fault %q: %s does not repeat (/EVERY)", text, kind)
		}
	}
	return s, nil
}

// ParseAll parses every --fault given.
func ParseAll(texts []string) ([]Spec, error) {
	var out []Spec
	var errs []error
	for _, t := range texts {
		s, err := Parse(t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, s)
	}
	return out, errors.Join(errs...)
}

// duration parses a Go duration, refusing what time.ParseDuration would
// take but the grammar would misread (signs).
func duration(s string) (time.Duration, error) {
	if s == "" || strings.ContainsAny(s, "+- ") {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d > 24*time.Hour {
		return 0, fmt.Errorf("duration %q is over a day", s)
	}
	return d, nil
}

// Describe renders a schedule for a verdict line: "pause 1s@2s,
// kill-conns every 300ms ×12", with how many times each fault fired.
func Describe(log []result.Fault) string {
	var parts []string
	for _, e := range log {
		p := e.Spec
		if e.Count > 1 {
			p += fmt.Sprintf(" ×%d", e.Count)
		}
		if e.Method != "" {
			p += " (" + e.Method + ")"
		}
		if e.Error != "" {
			p += " [failed: " + e.Error + "]"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}
