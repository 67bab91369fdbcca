package scenarios

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/reports/result"
)

// Limiter key expiries. A limiter's expiries only clean up — no decision
// depends on them — but the design relies on them all the same: a key
// that never expires is one key per user kept forever, and a key that
// expires before its state stops mattering resets a decision. The
// rate-limit scenario reads the expiry of every limiter key of its cell
// back, while the load runs and right after it, and judges each against
// the key schema (README, "Key schema"):
//
//   - naive          limit:{<key>}          a period after the last admission
//     (each admission restarts it: the seed's bug, which the steady
//     client's lock-outs show);
//   - fixed-window   limit:{<key>}:fw:<w>   the window's end + 1 s;
//   - sliding-log    limit:{<key>}:log      a period + 1 s after the last
//     admission (the newest entry's score);
//   - sliding-window limit:{<key>}:sw       the end of the window after the
//     stored one (w+2 periods) + 1 s;
//   - gcra           limit:{<key>}:gcra     the theoretical arrival time it
//     holds + 1 s.
//
// Every scripted key must expire no earlier than its state ends and no
// later than that + 1 s (limitExpiryMargin); a naive key within a period.
// A key with no expiry at all is a violation: it would never expire.
//
// The expiry is read as the absolute moment the server will expire the
// key (PEXPIRETIME, Redis 7), in one MULTI with the server's TIME and the
// state each bound depends on. The server computes a key's expiry from a
// clock it caches per event-loop iteration, which under load runs tens of
// milliseconds behind TIME: an absolute expiry is only ever earlier for
// it, never later. It can be later than the script's own TIME by the
// time the script took between its TIME and its PEXPIRE, which is
// microseconds — unless the server's process was preempted in between, as
// it is on a loaded machine (tens of milliseconds were seen with two cores
// shared by a dozen processes): the upper bound allows
// limitExpiryPreemption for that. A server without
// PEXPIRETIME is read with PTTL instead, whose remaining time counts from
// that cached clock too, with a wider slack (readExpiry).

const (
	// limitExpiryMargin is the clean-up margin every limiter script adds
	// to the moment its state stops mattering.
	limitExpiryMargin = time.Second
	// limitExpirySlack absorbs PEXPIRETIME's rounding to a millisecond and
	// the scripts' own (they round a remaining time up to one).
	limitExpirySlack = 20 * time.Millisecond
	// limitExpirySlackPTTL is the slack when a server without PEXPIRETIME
	// is read with PTTL: its cached clock's lag behind TIME as well.
	limitExpirySlackPTTL = 250 * time.Millisecond
	// limitExpiryPreemption is the extra slack of the upper bound: the
	// time a script may stand between reading TIME and setting the expiry
	// when the server's process is preempted. A key kept that much longer
	// harms nothing; one that never expires, or lives a multiple of its
	// documented time, is still seen.
	limitExpiryPreemption = 250 * time.Millisecond
	// limitExpiryChunk is how many keys one MULTI reads.
	limitExpiryChunk = 200
)

// expiryReader reads key expiries: PEXPIRETIME, or PTTL on a server
// without it.
type expiryReader struct {
	// pttl is set once the server turned PEXPIRETIME down.
	pttl bool
}

// queue queues the read of key's expiry in p.
func (r *expiryReader) queue(ctx context.Context, p redis.Pipeliner, key string) *redis.Cmd {
	if r.pttl {
		return p.Do(ctx, "pttl", key)
	}
	return p.Do(ctx, "pexpiretime", key)
}

// retry reports whether a read failed because the server does not know
// PEXPIRETIME (Redis before 7.0), and switches to PTTL.
func (r *expiryReader) retry(cmd *redis.Cmd) bool {
	if r.pttl || cmd == nil || impl.Classify(cmd.Err()) != impl.ClassUnknownCommand {
		return false
	}
	r.pttl = true
	return true
}

// slack is the tolerance of a bound for the reads made.
func (r *expiryReader) slack() int64 {
	if r.pttl {
		return limitExpirySlackPTTL.Microseconds()
	}
	return limitExpirySlack.Microseconds()
}

// at turns a read expiry into the moment (server µs) the key expires, read
// at server time now (µs): gone is true when the key no longer exists,
// never when it has no expiry.
func (r *expiryReader) at(cmd *redis.Cmd, now int64) (at int64, gone, never bool, err error) {
	v, err := cmd.Int64()
	switch {
	case err != nil:
		return 0, false, false, err
	case v == -2:
		return 0, true, false, nil
	case v == -1:
		return 0, false, true, nil
	case r.pttl:
		return now + v*1000, false, false, nil
	}
	return v * 1000, false, false, nil
}

// limitExpiryCheck tallies the limiter key expiries read back.
type limitExpiryCheck struct {
	// read counts key expiries read (a key read twice counts twice).
	read int64
	// noExpiry counts keys with no expiry (PTTL -1).
	noExpiry int64
	// early counts keys set to expire before their state ends.
	early int64
	// late counts keys set to expire after the documented bound.
	late int64
	// first describes the first violation seen ("" when none).
	first string
}

// add adds u's counts to c, keeping c's first violation when it has one.
func (c *limitExpiryCheck) add(u limitExpiryCheck) {
	c.read += u.read
	c.noExpiry += u.noExpiry
	c.early += u.early
	c.late += u.late
	if c.first == "" {
		c.first = u.first
	}
}

// violations counts the keys whose expiry broke the schema.
func (c limitExpiryCheck) violations() int64 { return c.noExpiry + c.early + c.late }

// note records a violation of kind (one of the counters) on key.
func (c *limitExpiryCheck) note(counter *int64, key, what string) {
	*counter++
	if c.first == "" {
		c.first = key + ": " + what
	}
}

// limitKeyShape tells, from a limiter key's name (impl.LimitKey,
// impl.LimitWindowKey), which strategy keeps it and, for a fixed-window
// counter, its window index. ok is false for a key of no limiter.
func limitKeyShape(key string) (strategy string, window int64, ok bool) {
	i := strings.LastIndexByte(key, '}')
	if i < 0 || !strings.Contains(key[:i], "limit:{") {
		return "", 0, false
	}
	switch suffix := key[i+1:]; suffix {
	case "":
		return impl.LimitNaive, 0, true
	case ":log":
		return impl.LimitSlidingLog, 0, true
	case ":sw":
		return impl.LimitSlidingWindow, 0, true
	case ":gcra":
		return impl.LimitGCRA, 0, true
	case ":redis_rate":
		return impl.LimitRedisRate, 0, true
	default:
		w, found := strings.CutPrefix(suffix, ":fw:")
		if !found {
			return "", 0, false
		}
		n, err := strconv.ParseInt(w, 10, 64)
		if err != nil {
			return "", 0, false
		}
		return impl.LimitFixedWindow, n, true
	}
}

// limitExpiryBounds returns, in server microseconds, the earliest and the
// latest moment key (of strategy, window w for fixed-window) may expire,
// given the server time now and state, the part of the key's state the
// bound depends on (sliding-log: the newest entry's score; sliding-window:
// the stored window; gcra: the theoretical arrival time; µs or a window
// index), with slack µs of tolerance.
func limitExpiryBounds(strategy string, o impl.LimitOptions, w, state, now, slack int64) (lo, hi int64) {
	p := o.Period.Microseconds()
	margin := limitExpiryMargin.Microseconds()
	var end int64
	switch strategy {
	case impl.LimitNaive:
		return now, now + p + slack + limitExpiryPreemption.Microseconds()
	case impl.LimitFixedWindow:
		end = (w + 1) * p
	case impl.LimitSlidingLog:
		end = state + p
	case impl.LimitSlidingWindow:
		end = (state + 2) * p
	case impl.LimitGCRA, impl.LimitRedisRate:
		end = state
	}
	return end - slack, end + margin + slack + limitExpiryPreemption.Microseconds()
}

// scanLimitExpiries reads the expiry of every limiter key under o.Keys
// (SCAN MATCH <prefix>limit:*) and judges each (readLimitExpiries).
func scanLimitExpiries(ctx context.Context, admin redis.UniversalClient, o impl.LimitOptions) (limitExpiryCheck, error) {
	keys, err := scanKeys(ctx, admin, o.Keys.Prefix()+"limit:*")
	if err != nil {
		return limitExpiryCheck{}, fmt.Errorf("scan the limiter keys: %w", err)
	}
	return readLimitExpiries(ctx, admin, o, keys)
}

// readLimitExpiries reads keys' expiries (expiryReader), the server's
// TIME and the state each bound depends on, in one MULTI per
// limitExpiryChunk keys so that all of it is one instant of the server's,
// and judges each key against limitExpiryBounds. A key that is gone by
// then is not counted.
func readLimitExpiries(ctx context.Context, admin redis.UniversalClient, o impl.LimitOptions, keys []string) (limitExpiryCheck, error) {
	var c limitExpiryCheck
	var r expiryReader
	for lo := 0; lo < len(keys); {
		chunk := keys[lo:min(lo+txChunk(admin, limitExpiryChunk), len(keys))]
		var clock *redis.TimeCmd
		ttls := make([]*redis.Cmd, len(chunk))
		states := make([]redis.Cmder, len(chunk))
		_, err := admin.TxPipelined(ctx, func(p redis.Pipeliner) error {
			clock = p.Time(ctx)
			for i, k := range chunk {
				ttls[i] = r.queue(ctx, p, k)
				strategy, _, _ := limitKeyShape(k)
				switch strategy {
				case impl.LimitSlidingLog:
					states[i] = p.ZRangeWithScores(ctx, k, -1, -1)
				case impl.LimitSlidingWindow:
					states[i] = p.HGet(ctx, k, "w")
				case impl.LimitGCRA, impl.LimitRedisRate:
					states[i] = p.Get(ctx, k)
				}
			}
			return nil
		})
		if err != nil && r.retry(ttls[0]) {
			continue // the same chunk again, with PTTL
		}
		if err != nil && !errors.Is(err, redis.Nil) {
			return c, fmt.Errorf("read the limiter keys' expiries: %w", err)
		}
		now := clock.Val().UnixMicro()
		for i, k := range chunk {
			if err := c.judge(o, &r, k, now, ttls[i], states[i]); err != nil {
				return c, err
			}
		}
		lo += len(chunk)
	}
	return c, nil
}

// judge judges one key's expiry, read at server time now (µs).
func (c *limitExpiryCheck) judge(o impl.LimitOptions, r *expiryReader, key string, now int64, ttl *redis.Cmd, state redis.Cmder) error {
	at, gone, never, err := r.at(ttl, now)
	if err != nil {
		return fmt.Errorf("expiry of %s: %w", key, err)
	}
	if gone {
		return nil // expired meanwhile: nothing left to judge
	}
	name := strings.TrimPrefix(key, o.Keys.Prefix())
	c.read++
	if never {
		c.note(&c.noExpiry, name, "no expiry: it would never expire")
		return nil
	}
	strategy, w, ok := limitKeyShape(key)
	if !ok {
		return fmt.Errorf("%s is no limiter key", key)
	}
	var st int64
	switch s := state.(type) {
	case *redis.ZSliceCmd:
		zs, err := s.Result()
		if err != nil || len(zs) == 0 {
			return fmt.Errorf("newest entry of %s: %v (%w)", key, zs, err)
		}
		st = int64(zs[0].Score)
	case *redis.StringCmd:
		if strategy == impl.LimitRedisRate {
			// The library's float seconds since 2017-01-01.
			if st, err = impl.RedisRateTAT(s.Val()); err != nil {
				return fmt.Errorf("state of %s: %w", key, err)
			}
		} else if st, err = s.Int64(); err != nil {
			return fmt.Errorf("state of %s: %w", key, err)
		}
	}
	lo, hi := limitExpiryBounds(strategy, o, w, st, now, r.slack())
	switch {
	case at < lo:
		c.note(&c.early, name, fmt.Sprintf("expires %s before its state ends", time.Duration(lo-at)*time.Microsecond))
	case at > hi:
		c.note(&c.late, name, fmt.Sprintf("expires %s after the documented bound", time.Duration(at-hi)*time.Microsecond))
	}
	return nil
}

// limitExpiryBoundName says in words when a strategy's keys must expire.
func limitExpiryBoundName(strategy string) string {
	switch strategy {
	case impl.LimitNaive:
		return "within a period of the last admission, which restarts it (the seed's documented behaviour; its cost is the steady client's lock-outs)"
	case impl.LimitFixedWindow:
		return "at the window's end + 1s"
	case impl.LimitSlidingLog:
		return "a period + 1s after the last admission"
	case impl.LimitSlidingWindow:
		return "at the end of the window after the stored one + 1s"
	case impl.LimitGCRA:
		return "at the theoretical arrival time + 1s"
	case impl.LimitRedisRate:
		return "at the theoretical arrival time + 1s (redis_rate sets EX ceil(reset_after))"
	}
	return "as documented"
}

// limitExpiryInvariant judges the expiries read: none missing, none out
// of the strategy's documented bound.
func limitExpiryInvariant(strategy string, c limitExpiryCheck) result.Invariant {
	first := c.first
	if first == "" {
		first = "none"
	}
	return Check("limiter keys expire as documented", c.violations() == 0,
		"%d limiter key expiries read while the load ran and after it, each due %s: %d keys without an expiry, %d due before their state ends, %d after the bound; first: %s",
		c.read, limitExpiryBoundName(strategy), c.noExpiry, c.early, c.late, first)
}

// limitExpiryFigures adds the expiry check's figures to f.
func limitExpiryFigures(f map[string]float64, c limitExpiryCheck) {
	f["limiter_expiries_read"] = float64(c.read)
	f["limiter_keys_without_expiry"] = float64(c.noExpiry)
	f["limiter_keys_expiring_early"] = float64(c.early)
	f["limiter_keys_expiring_late"] = float64(c.late)
}
