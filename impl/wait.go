package impl

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// DefaultWaitTimeout is how long a WAIT after a write waits for the
// replicas by default (ConnConfig.WaitTimeout 0).
const DefaultWaitTimeout = time.Second

// MaxWaitReplicas is the largest ConnConfig.WaitReplicas accepted.
const MaxWaitReplicas = 64

// WaitRedirects is how many MOVED replies in a row a cluster write
// followed by WAIT follows by hand (go-redis's default for its cluster
// client): both backends send the write and its WAIT to one node's
// connection, below their cluster clients' own redirection.
const WaitRedirects = 3

// MovedWait bounds how long a write followed by WAIT, sent by hand to the
// node a MOVED named, waits for the cluster client to learn of that node
// (a replica just promoted).
const MovedWait = time.Second

// AwaitNode returns the node lookup finds, looking again every 20 ms
// (after refresh, when not nil) for at most MovedWait; ok is false when
// it found none by then or ctx ended.
func AwaitNode[N any](ctx context.Context, lookup func() (N, bool), refresh func()) (n N, ok bool) {
	deadline := time.Now().Add(MovedWait)
	for {
		if n, ok = lookup(); ok {
			return n, true
		}
		if time.Now().After(deadline) || Sleep(ctx, 20*time.Millisecond) != nil {
			return n, false
		}
		if refresh != nil {
			refresh()
		}
	}
}

// Keys of Backend.Settings about WAIT after writes (ConnConfig.WaitReplicas),
// reported by every backend.
const (
	// SettingWaitReplicas: the replicas a WAIT after each write of the
	// stock strategies that support it asks for ("0": no WAIT).
	SettingWaitReplicas = "wait_replicas"
	// SettingWaitTimeout: the WAIT's time-out (a Go duration; "0s" when
	// no WAIT is sent).
	SettingWaitTimeout = "wait_timeout"
	// SettingWaitStrategies: the stock strategies that send the WAIT
	// (absent when no WAIT is sent).
	SettingWaitStrategies = "wait_strategies"
)

// WaitStrategies are the stock strategies that send WAIT after their
// write when ConnConfig.WaitReplicas is set: those whose write is one
// atomic step (a script, a MULTI/EXEC) on one connection, which WAIT then
// covers. naive and decr are left out: their deduction and their record
// are separate commands (a WAIT after each would not make the pair any
// safer, and they exist to show other bugs).
func WaitStrategies() []string {
	return []string{StockWatch, StockLua, StockIdempotent, StockSharded, StockShardedSlots}
}

// WaitSetting is the WAIT a stock strategy sends after each write: WAIT
// Replicas Timeout on the write's own connection. The zero value sends
// none.
type WaitSetting struct {
	// Replicas is WAIT's numreplicas; 0 sends no WAIT.
	Replicas int
	// Timeout is WAIT's time-out.
	Timeout time.Duration
}

// On reports whether a WAIT is sent.
func (w WaitSetting) On() bool { return w.Replicas > 0 }

// Millis is WAIT's time-out argument, in milliseconds (at least 1: WAIT's
// 0 would block for ever).
func (w WaitSetting) Millis() int64 { return max(1, w.Timeout.Milliseconds()) }

// Confirmed reports whether a WAIT reply (the replicas that acknowledged)
// confirms the write.
func (w WaitSetting) Confirmed(acked int64) bool { return acked >= int64(w.Replicas) }

// Applies reports whether strategy sends the WAIT.
func (w WaitSetting) Applies(strategy string) bool {
	if !w.On() {
		return false
	}
	for _, s := range WaitStrategies() {
		if s == strategy {
			return true
		}
	}
	return false
}

// Settings adds SettingWaitReplicas, SettingWaitTimeout and
// SettingWaitStrategies to a backend's settings.
func (w WaitSetting) Settings(set map[string]string) map[string]string {
	set[SettingWaitReplicas] = strconv.Itoa(w.Replicas)
	set[SettingWaitTimeout] = "0s"
	if w.On() {
		set[SettingWaitTimeout] = w.Timeout.String()
		set[SettingWaitStrategies] = fmt.Sprint(WaitStrategies())
	}
	return set
}

// WaitSetting returns the WAIT in effect: WaitReplicas, and WaitTimeout
// or DefaultWaitTimeout.
func (c ConnConfig) WaitSetting() WaitSetting {
	if c.WaitReplicas <= 0 {
		return WaitSetting{}
	}
	t := c.WaitTimeout
	if t <= 0 {
		t = DefaultWaitTimeout
	}
	return WaitSetting{Replicas: c.WaitReplicas, Timeout: t}
}

// validateWait checks WaitReplicas and WaitTimeout: the time-out must be
// shorter than the read time-out in effect (ReadTimeout, else the 3 s
// default), or the client would give up on the reply first.
func (c ConnConfig) validateWait() error {
	switch {
	case c.WaitReplicas < 0 || c.WaitReplicas > MaxWaitReplicas:
		return fmt.Errorf("%w: wait replicas %d: want 0 (no WAIT) to %d", ErrInvalidConnConfig, c.WaitReplicas, MaxWaitReplicas)
	case c.WaitTimeout < 0:
		return fmt.Errorf("%w: wait time-out %v: want more than 0", ErrInvalidConnConfig, c.WaitTimeout)
	case c.WaitTimeout > 0 && c.WaitTimeout < time.Millisecond:
		return fmt.Errorf("%w: wait time-out %v: want 1ms or more (WAIT counts in milliseconds)", ErrInvalidConnConfig, c.WaitTimeout)
	}
	read := c.ReadTimeout
	if read <= 0 {
		read = 3 * time.Second
	}
	if w := c.WaitSetting(); w.On() && w.Timeout >= read {
		return fmt.Errorf("%w: wait time-out %v: want less than the read time-out %v", ErrInvalidConnConfig, w.Timeout, read)
	}
	return nil
}
