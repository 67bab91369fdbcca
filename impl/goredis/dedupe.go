package goredis

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	redis "github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
)

// Compile-time checks.
var (
	_ impl.DedupeBackend = (*Client)(nil)
	_ impl.Deduper       = (*naiveDeduper)(nil)
	_ impl.Deduper       = (*setNXDeduper)(nil)
)

// Deduper returns the named duplicate-submission guard (one of
// impl.DedupeStrategies). Zero options take their defaults; opts.Keys is
// required.
func (c *Client) Deduper(strategy string, opts impl.DedupeOptions) (impl.Deduper, error) {
	opts = opts.WithDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("goredis: %w", err)
	}
	switch strategy {
	case impl.DedupeNaive:
		return &naiveDeduper{rdb: c.rdb, opts: opts}, nil
	case impl.DedupeSetNX:
		return &setNXDeduper{rdb: c.rdb, opts: opts}, nil
	}
	return nil, impl.StrategyError("dedupe", strategy, impl.DedupeStrategies())
}

// naiveDeduper is the seed's prevent_brush: it writes the marker (SETEX,
// here holding the submission's id) and checks nothing, so every
// submission passes.
type naiveDeduper struct {
	rdb  redis.UniversalClient
	opts impl.DedupeOptions
}

// Submit SETs the marker with the window as expiry and accepts.
func (d *naiveDeduper) Submit(ctx context.Context, fp, id string) (impl.Submission, error) {
	if err := impl.ValidateSubmissionID(id); err != nil {
		return impl.Submission{}, dedupeErr(impl.DedupeNaive, fp, err)
	}
	if err := d.rdb.Set(ctx, impl.DedupeKey(d.opts.Keys, fp), id, d.opts.Window).Err(); err != nil {
		return impl.Submission{}, dedupeErr(impl.DedupeNaive, fp, err)
	}
	return impl.Submission{Accepted: true, OriginalID: id}, nil
}

// setNXDeduper stores the first submission's id with SET NX GET: one
// atomic command that both claims the fingerprint and, when it was already
// claimed, returns the claimant's id.
type setNXDeduper struct {
	rdb  redis.UniversalClient
	opts impl.DedupeOptions
}

// Submit runs SET key id NX PX window GET: a nil reply means this
// submission claimed the fingerprint; otherwise the reply is the
// original's id.
func (d *setNXDeduper) Submit(ctx context.Context, fp, id string) (impl.Submission, error) {
	if err := impl.ValidateSubmissionID(id); err != nil {
		return impl.Submission{}, dedupeErr(impl.DedupeSetNX, fp, err)
	}
	prev, err := d.rdb.SetArgs(ctx, impl.DedupeKey(d.opts.Keys, fp), id, redis.SetArgs{
		Mode: "NX",
		TTL:  d.opts.Window,
		Get:  true,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return impl.Submission{Accepted: true, OriginalID: id}, nil
	}
	if err != nil {
		return impl.Submission{}, dedupeErr(impl.DedupeSetNX, fp, err)
	}
	return impl.Submission{OriginalID: prev}, nil
}

func dedupeErr(strategy, fp string, err error) error {
	return fmt.Errorf("goredis dedupe %s: submit %s: %w", strategy, strconv.Quote(fp), err)
}
