package history

import "sync/atomic"

func atomicAdd(p *int32) int32 { return atomic.AddInt32(p, 1) - 1 }
