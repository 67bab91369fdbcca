package rueidis

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strconv"

	rd "github.com/redis/rueidis"

	"github.com/paybench/paybench/impl"
	"github.com/paybench/paybench/impl/scripts"
)

// Compile-time checks: the strategies that pipeline.
var (
	_ impl.StockBatcher = (*luaStock)(nil)
	_ impl.StockBatcher = (*decrStock)(nil)
)

// stockDeductSHA is the SHA1 of scripts.StockDeduct, for EVALSHA in a
// DoMulti. rueidis's own Lua.ExecMulti sends SCRIPT LOAD before every
// batch, one more round trip per batch than a pipeline needs.
var stockDeductSHA = func() string {
	sum := sha1.Sum([]byte(scripts.StockDeduct))
	return hex.EncodeToString(sum[:])
}()

// DeductBatch sends one EVALSHA of scripts.StockDeduct per item in one
// DoMulti (written to the pipelined connection together, replies read in
// order). The deductions refused with NOSCRIPT (the script is not in the
// server's cache; the command did not run) are sent again as EVAL, which
// caches the script for the next batches.
func (s *luaStock) DeductBatch(ctx context.Context, items []string, qty int64) ([]impl.Deduction, error) {
	if err := impl.ValidateQuantity(qty); err != nil {
		return nil, s.deductBatchErrorf(err)
	}
	q := strconv.FormatInt(qty, 10)
	cmds := make(rd.Commands, len(items))
	for i, it := range items {
		cmds[i] = s.rc.B().Evalsha().Sha1(stockDeductSHA).Numkeys(1).Key(s.key(it)).Arg(q).Build()
	}
	out := make([]impl.Deduction, len(items))
	errs := make([]error, len(items))
	var again []int
	for i, r := range s.rc.DoMulti(ctx, cmds...) {
		if re, ok := rd.IsRedisErr(r.Error()); ok && re.IsNoScript() {
			again = append(again, i)
			continue
		}
		out[i], errs[i] = decodeBatchDeduction(r)
	}
	if len(again) > 0 {
		cmds = cmds[:0]
		for _, i := range again {
			cmds = append(cmds, s.rc.B().Eval().Script(scripts.StockDeduct).Numkeys(1).Key(s.key(items[i])).Arg(q).Build())
		}
		for j, r := range s.rc.DoMulti(ctx, cmds...) {
			i := again[j]
			out[i], errs[i] = decodeBatchDeduction(r)
		}
	}
	return stockBatchResult(out, errs, s.deductBatchErrorf)
}

// decodeBatchDeduction decodes a check-and-deduct script's {ok, remaining}.
func decodeBatchDeduction(r rd.RedisResult) (impl.Deduction, error) {
	res, err := r.AsIntSlice()
	if err != nil {
		return impl.Deduction{}, err
	}
	return impl.DecodeDeduction(res)
}

// DeductBatch sends one DECRBY per item in one DoMulti, then, in a second
// one, the compensating INCRBY of every deduction that went below zero
// (run even when ctx has ended, as Deduct does).
func (s *decrStock) DeductBatch(ctx context.Context, items []string, qty int64) ([]impl.Deduction, error) {
	if err := impl.ValidateQuantity(qty); err != nil {
		return nil, s.deductBatchErrorf(err)
	}
	cmds := make(rd.Commands, len(items))
	for i, it := range items {
		cmds[i] = s.rc.B().Decrby().Key(s.key(it)).Decrement(qty).Build()
	}
	out := make([]impl.Deduction, len(items))
	errs := make([]error, len(items))
	var short []int
	for i, r := range s.rc.DoMulti(ctx, cmds...) {
		n, err := r.AsInt64()
		if err != nil {
			errs[i] = err
			continue
		}
		out[i] = impl.Deduction{OK: n >= 0, Remaining: n}
		if n < 0 {
			short = append(short, i)
		}
	}
	if len(short) > 0 {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		cmds = cmds[:0]
		for _, i := range short {
			cmds = append(cmds, s.rc.B().Incrby().Key(s.key(items[i])).Increment(qty).Build())
		}
		for j, r := range s.rc.DoMulti(cctx, cmds...) {
			if err := r.Error(); err != nil {
				errs[short[j]] = fmt.Errorf("compensating INCRBY %d failed, stock is short by that much: %w", qty, err)
			}
		}
	}
	return stockBatchResult(out, errs, s.deductBatchErrorf)
}

// stockBatchResult returns the batch's results with nil, a *impl.BatchError
// when some failed, or only the error when all failed for one reason that
// is not Redis's (the round trip itself failed).
func stockBatchResult(out []impl.Deduction, errs []error, wrap func(error) error) ([]impl.Deduction, error) {
	err := impl.BatchErrors(errs)
	if err == nil {
		return out, nil
	}
	if be := err.(*impl.BatchError); be.Failed == be.Total {
		if _, isReply := rd.IsRedisErr(be.Err); !isReply {
			return nil, wrap(be.Err)
		}
	}
	return out, wrap(err)
}

func (s *plainStock) deductBatchErrorf(err error) error {
	return fmt.Errorf("rueidis stock %s: deduct batch: %w", s.name, err)
}
