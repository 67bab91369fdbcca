package scripts

import _ "embed"

// orderLib holds the helpers the order scripts share (now_ms, stock_of,
// release_if_overdue); it is prepended to each script that uses them, so
// every script stays one self-contained EVAL body.
//
//go:embed order_lib.lua
var orderLib string

//go:embed order_get.lua
var orderGet string

//go:embed order_transition.lua
var orderTransition string

//go:embed order_release.lua
var orderRelease string

// OrderCreate is the idempotent create of the safe order strategy.
// KEYS[1] is the order hash; ARGV are the id, item, quantity and amount.
// It returns {1, fields} when it stored the order in status created, and
// {0, fields} when the order already existed (fields as HGETALL).
//
//go:embed order_create.lua
var OrderCreate string

// OrderGet reads one order, first returning its reservation to stock and
// cancelling it when the reservation is overdue. KEYS are the order hash,
// the item's stock and its reservations. It returns {1, fields} or {-1, {}}.
var OrderGet = orderLib + "\n" + orderGet

// OrderTransition is the compare-and-set transition of the safe order
// strategy, side effects included. KEYS are the order hash, the item's
// stock, reservations and ledger; ARGV the target status and the
// reservation TTL in milliseconds. It returns {code, fields, stock,
// overdue}; the codes are documented in order_transition.lua.
var OrderTransition = orderLib + "\n" + orderTransition

// OrderRelease returns an item's overdue reservations to stock. KEYS are
// the item's stock, its reservations and candidate order hashes; ARGV the
// candidates' order ids. It returns {released, released_units, stock,
// reservations_left, overdue_left}.
var OrderRelease = orderLib + "\n" + orderRelease
