package impl

import (
	"context"
	"fmt"
)

// StockBatcher is implemented by stock strategies that can send many
// deductions in one round trip: a go-redis pipeline, a rueidis DoMulti.
// The lua, idempotent and decr strategies of both backends offer it
// (idempotent's deductions are lua's); naive, watch and
// sharded do not (each of their deductions needs the reply of an earlier
// command before it can go on).
//
// A batch is not a transaction: each deduction is as atomic as the
// strategy's single Deduct, and they apply in order.
type StockBatcher interface {
	// DeductBatch takes qty units from each of items (an item may appear
	// several times) and returns one Deduction per item, in order. When
	// the round trip itself fails it returns a nil slice and the error;
	// when only some deductions fail it returns every result (zero for
	// the failed ones) and a *BatchError.
	DeductBatch(ctx context.Context, items []string, qty int64) ([]Deduction, error)
}

// BatchError reports that some operations of a batch failed and the
// others succeeded.
type BatchError struct {
	// Failed is the number of operations that failed, of Total.
	Failed, Total int
	// Err is the first failure.
	Err error
}

// Error returns the first failure's message with the counts, so that the
// message still starts with the server's error code.
func (e *BatchError) Error() string {
	return fmt.Sprintf("%v (%d of %d operations of the batch failed)", e.Err, e.Failed, e.Total)
}

// Unwrap returns the first failure.
func (e *BatchError) Unwrap() error { return e.Err }

// FailedCount returns Failed: the load engine counts that many failed
// operations for the batch.
func (e *BatchError) FailedCount() int { return e.Failed }

// BatchErrors returns nil when every entry of errs is nil, else a
// *BatchError counting the failures, with the first one.
func BatchErrors(errs []error) error {
	var be *BatchError
	for _, err := range errs {
		if err == nil {
			continue
		}
		if be == nil {
			be = &BatchError{Total: len(errs), Err: err}
		}
		be.Failed++
	}
	if be == nil {
		return nil
	}
	return be
}
