// Package bolt is the default issuer store: a single bbolt file, typically in Caddy's data
// directory, that survives restarts and needs nothing installed.
//
// Each store.Bucket is a top-level bolt bucket, created on first write. A record is the
// entry's expiry in Unix nanoseconds (8 bytes, big-endian, 0 for never) followed by the value;
// an Incr counter's value is its decimal text. Expired records count as absent everywhere; a
// background sweeper deletes them every Options.SweepInterval, in small batches so writers
// are never held up for long.
//
// Every write (Put, Create, Take, Delete, Update, Incr) is one bolt read-write transaction,
// and bolt runs those one at a time: that is what makes Take single-use, Create exclusive and
// Update's read-modify-write atomic (its function runs inside the transaction). It also means
// every write ends in an fsync, which bounds write throughput to what the disk can sync; reads
// (Get, Scan) run concurrently and do not touch the disk.
//
// Publish and Subscribe work within the process: the file is open in one process only, and
// every issuer that shares it (the old and new configuration during a reload) shares the one
// Store value, so a message reaches each of them before Publish returns.
//
// Bolt locks the file, so only one Store (in one process) can have it open; a second Open
// fails after Options.LockTimeout instead of waiting forever. Several Caddy instances that
// must share state need the redis store instead.
package bolt
