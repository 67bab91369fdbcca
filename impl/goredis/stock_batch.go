package goredis

import (
	"context"
	"errors"
	"fmt"

	redis "github.com/redis/go-redis/v9"

	"github.com/paybench/paybench/impl"
)

// Compile-time checks: the strategies that pipeline.
var (
	_ impl.StockBatcher = (*luaStock)(nil)
	_ impl.StockBatcher = (*decrStock)(nil)
)

// DeductBatch sends one EVALSHA of scripts.StockDeduct per item in one
// pipeline (one connection of the pool, one write, one read of all the
// replies). A script missing from the server's cache (NOSCRIPT) is loaded
// once and the deductions it refused are sent again: a NOSCRIPT reply means
// the command did not run.
func (s *luaStock) DeductBatch(ctx context.Context, items []string, qty int64) ([]impl.Deduction, error) {
	if err := impl.ValidateQuantity(qty); err != nil {
		return nil, s.deductBatchErrorf(err)
	}
	keys := make([][]string, len(items))
	for i, it := range items {
		keys[i] = []string{s.key(it)}
	}
	out := make([]impl.Deduction, len(items))
	errs := make([]error, len(items))
	todo := make([]int, len(items))
	for i := range todo {
		todo[i] = i
	}
	for attempt := 0; len(todo) > 0; attempt++ {
		cmds := make([]*redis.Cmd, len(todo))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for j, i := range todo {
				cmds[j] = stockDeductScript.EvalSha(ctx, p, keys[i], qty)
			}
			return nil
		})
		if err != nil && !stockBatchReplyErrors(cmds) {
			return nil, s.deductBatchErrorf(err)
		}
		var again []int
		for j, i := range todo {
			err := cmds[j].Err()
			if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") && attempt == 0 {
				again = append(again, i)
				continue
			}
			if err == nil {
				out[i], err = decodeBatchDeduction(cmds[j])
			}
			errs[i] = err
		}
		if len(again) > 0 {
			if err := stockDeductScript.Load(ctx, s.rdb).Err(); err != nil {
				return nil, s.deductBatchErrorf(fmt.Errorf("SCRIPT LOAD: %w", err))
			}
		}
		todo = again
	}
	if err := impl.BatchErrors(errs); err != nil {
		return out, s.deductBatchErrorf(err)
	}
	return out, nil
}

// stockBatchReplyErrors reports whether a pipeline's error came from Redis
// error replies to some commands (the others ran) rather than from the
// round trip: then every command carries its own reply.
func stockBatchReplyErrors[C redis.Cmder](cmds []C) bool {
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			var re redis.Error
			if !errors.As(err, &re) {
				return false
			}
		}
	}
	return true
}

// decodeBatchDeduction decodes a check-and-deduct script's {ok, remaining}.
func decodeBatchDeduction(c *redis.Cmd) (impl.Deduction, error) {
	res, err := c.Int64Slice()
	if err != nil {
		return impl.Deduction{}, err
	}
	return impl.DecodeDeduction(res)
}

// DeductBatch sends one DECRBY per item in one pipeline, then, in a second
// pipeline, the compensating INCRBY of every deduction that went below
// zero (run even when ctx has ended, as Deduct does).
func (s *decrStock) DeductBatch(ctx context.Context, items []string, qty int64) ([]impl.Deduction, error) {
	if err := impl.ValidateQuantity(qty); err != nil {
		return nil, s.deductBatchErrorf(err)
	}
	cmds := make([]*redis.IntCmd, len(items))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, it := range items {
			cmds[i] = p.DecrBy(ctx, s.key(it), qty)
		}
		return nil
	})
	if err != nil && !stockBatchReplyErrors(cmds) {
		return nil, s.deductBatchErrorf(err)
	}
	out := make([]impl.Deduction, len(items))
	errs := make([]error, len(items))
	var short []int
	for i, c := range cmds {
		n, err := c.Result()
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
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), compensationTimeout)
		defer cancel()
		back := make([]*redis.IntCmd, len(short))
		_, err := s.rdb.Pipelined(cctx, func(p redis.Pipeliner) error {
			for j, i := range short {
				back[j] = p.IncrBy(cctx, s.key(items[i]), qty)
			}
			return nil
		})
		if err != nil && !stockBatchReplyErrors(back) {
			for _, i := range short {
				errs[i] = fmt.Errorf("compensating INCRBY %d failed, stock is short by that much: %w", qty, err)
			}
		} else {
			for j, i := range short {
				if err := back[j].Err(); err != nil {
					errs[i] = fmt.Errorf("compensating INCRBY %d failed, stock is short by that much: %w", qty, err)
				}
			}
		}
	}
	if err := impl.BatchErrors(errs); err != nil {
		return out, s.deductBatchErrorf(err)
	}
	return out, nil
}

func (s *plainStock) deductBatchErrorf(err error) error {
	return fmt.Errorf("goredis stock %s: deduct batch: %w", s.name, err)
}
