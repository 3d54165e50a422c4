package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// maxMoved bounds how often a cluster write follows a MOVED reply (the slot went to another
// master) before it gives up: the script did not run on a master that answered MOVED, so
// sending it again is safe.
const maxMoved = 3

// always is run's wrote for a script that writes whenever it succeeds.
func always(*redis.Cmd) bool { return true }

// returnedOne is run's wrote for a script that returns 1 when it wrote and 0 when it did not
// (Create of a taken key, a compare-and-swap that lost).
func returnedOne(cmd *redis.Cmd) bool {
	n, err := cmd.Int()
	return err == nil && n == 1
}

// run runs the write script on the master that owns keys (both carry one hash tag) and returns
// its reply. A write to a durable bucket, when the store waits for replicas, is followed on
// the same connection — one pipeline — by WAIT: if the script wrote (per wrote) and fewer
// than minReplicas replicas acknowledged within replicaTimeout, the second result is an error
// wrapping store.ErrUnavailable. Nothing is retried, except a cluster write that a master
// refused with MOVED.
func (s *Store) run(ctx context.Context, b store.Bucket, script *redis.Script, keys []string, args []any, wrote func(*redis.Cmd) bool) (*redis.Cmd, error) {
	n := 0
	if s.durable[b] || s.allDurable {
		n = s.minReplicas
	}
	if s.cluster == nil {
		if n == 0 {
			return script.Run(ctx, s.single, keys, args...), nil
		}
		return s.runWait(ctx, s.single, script, keys, args, n, wrote)
	}
	// On a cluster, talk to the key's master directly: the cluster client would send WAIT,
	// which has no key, to any node, and it retries a command whose connection broke after
	// sending it, which could run a Take twice.
	var cmd *redis.Cmd
	var waitErr error
	for attempt := range maxMoved {
		if attempt > 0 { // give the slot reload asked for below a moment
			t := time.NewTimer(time.Duration(attempt) * 100 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return cmd, waitErr
			case <-t.C:
			}
		}
		c, err := s.cluster.MasterForKey(ctx, keys[0])
		if err != nil {
			cmd = redis.NewCmd(ctx)
			cmd.SetErr(err)
			return cmd, nil
		}
		if n == 0 {
			cmd = script.Run(ctx, c, keys, args...)
		} else {
			cmd, waitErr = s.runWait(ctx, c, script, keys, args, n, wrote)
		}
		err = cmd.Err()
		if err == nil {
			return cmd, waitErr
		}
		var reply redis.Error
		if !errors.As(err, &reply) {
			// The connection failed: the master may have gone, and the cluster client learns
			// the new one only when it reloads the slots, which it otherwise does after
			// seconds. Tell it now (it reloads in the background) and report this failure.
			s.cluster.ReloadState(ctx)
			return cmd, waitErr
		}
		if !strings.HasPrefix(err.Error(), "MOVED ") {
			return cmd, waitErr
		}
		s.cluster.ReloadState(ctx)
	}
	return cmd, waitErr
}

// runWait sends the script and WAIT n in one pipeline on one connection of c, so that WAIT
// waits for this write; it loads the script first when the server does not know it.
func (s *Store) runWait(ctx context.Context, c *redis.Client, script *redis.Script, keys []string, args []any, n int, wrote func(*redis.Cmd) bool) (*redis.Cmd, error) {
	send := func(eval func(redis.Pipeliner) *redis.Cmd) (*redis.Cmd, *redis.Cmd) {
		var cmd *redis.Cmd
		var wait *redis.Cmd
		_, _ = c.Pipelined(ctx, func(p redis.Pipeliner) error {
			cmd = eval(p)
			wait = p.Do(ctx, "WAIT", n, s.replicaTimeout.Milliseconds())
			return nil
		})
		return cmd, wait
	}
	cmd, wait := send(func(p redis.Pipeliner) *redis.Cmd { return script.EvalSha(ctx, p, keys, args...) })
	if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		cmd, wait = send(func(p redis.Pipeliner) *redis.Cmd { return script.Eval(ctx, p, keys, args...) })
	}
	if cmd.Err() != nil || !wrote(cmd) {
		return cmd, nil
	}
	got, err := wait.Int64()
	switch {
	case err != nil:
		return cmd, fail(ctx, "wait", err)
	case got < int64(n):
		return cmd, fmt.Errorf("%w: redis: the master applied the write, but only %d of the %d replicas it must reach acknowledged it within %v",
			store.ErrUnavailable, got, n, s.replicaTimeout)
	}
	return cmd, nil
}
