package rueidis

import (
	"context"
	"fmt"
	"strconv"

	rd "github.com/redis/rueidis"

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
		return nil, fmt.Errorf("rueidis: %w", err)
	}
	switch strategy {
	case impl.DedupeNaive:
		return &naiveDeduper{rc: c.rc, opts: opts}, nil
	case impl.DedupeSetNX:
		return &setNXDeduper{rc: c.rc, opts: opts}, nil
	}
	return nil, impl.StrategyError("dedupe", strategy, impl.DedupeStrategies())
}

// naiveDeduper is the seed's prevent_brush: it writes the marker (SETEX,
// here holding the submission's id) and checks nothing, so every
// submission passes.
type naiveDeduper struct {
	rc   rd.Client
	opts impl.DedupeOptions
}

// Submit SETs the marker with the window as expiry and accepts.
func (d *naiveDeduper) Submit(ctx context.Context, fp, id string) (impl.Submission, error) {
	if err := impl.ValidateSubmissionID(id); err != nil {
		return impl.Submission{}, dedupeErr(impl.DedupeNaive, fp, err)
	}
	cmd := d.rc.B().Set().Key(impl.DedupeKey(d.opts.Keys, fp)).Value(id).Px(d.opts.Window).Build()
	if err := d.rc.Do(ctx, cmd).Error(); err != nil {
		return impl.Submission{}, dedupeErr(impl.DedupeNaive, fp, err)
	}
	return impl.Submission{Accepted: true, OriginalID: id}, nil
}

// setNXDeduper stores the first submission's id with SET NX GET: one
// atomic command that both claims the fingerprint and, when it was already
// claimed, returns the claimant's id.
type setNXDeduper struct {
	rc   rd.Client
	opts impl.DedupeOptions
}

// Submit runs SET key id NX GET PX window: a nil reply means this
// submission claimed the fingerprint; otherwise the reply is the
// original's id.
func (d *setNXDeduper) Submit(ctx context.Context, fp, id string) (impl.Submission, error) {
	if err := impl.ValidateSubmissionID(id); err != nil {
		return impl.Submission{}, dedupeErr(impl.DedupeSetNX, fp, err)
	}
	cmd := d.rc.B().Set().Key(impl.DedupeKey(d.opts.Keys, fp)).Value(id).Nx().Get().Px(d.opts.Window).Build()
	prev, err := d.rc.Do(ctx, cmd).ToString()
	if rd.IsRedisNil(err) {
		return impl.Submission{Accepted: true, OriginalID: id}, nil
	}
	if err != nil {
		return impl.Submission{}, dedupeErr(impl.DedupeSetNX, fp, err)
	}
	return impl.Submission{OriginalID: prev}, nil
}

func dedupeErr(strategy, fp string, err error) error {
	return fmt.Errorf("rueidis dedupe %s: submit %s: %w", strategy, strconv.Quote(fp), err)
}
