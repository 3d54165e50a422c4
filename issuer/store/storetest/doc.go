// Package storetest is the contract suite for store.Store backends. Every backend runs it from
// its own tests:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openFresh(t) })
//	}
//
//	func TestPersistence(t *testing.T) {
//		storetest.RunPersistence(t, func(t *testing.T) store.Store { return openSameData(t) })
//	}
//
// The suite uses real goroutines for races (32 at once) and the real clock for expiry (its
// short-lived entries live 1.2s); it takes a few seconds. Every subtest works in fresh,
// randomly named buckets, so a backend whose stores share one database (one Redis instance,
// say) can run it without clearing anything first.
package storetest
