package issuer

import (
	"context"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate-auth/tollgate/issuer/keys"
)

// Intervals of the background upkeep.
const (
	// keyUpkeep is how often signing keys are checked for rotation and reloaded.
	keyUpkeep = time.Minute
	// keyLead is how long a new signing key is published before it signs: longer than the
	// JWKS cache lifetime we announce (5 minutes).
	keyLead = 10 * time.Minute
)

// rotation is the key rotation policy of the configuration.
func (s *Server) rotation() keys.Rotation {
	return keys.Rotation{Every: time.Duration(s.cfg.KeyRotation), Lead: keyLead,
		KeepFor: max(time.Duration(s.cfg.AccessTokenTTL), time.Hour) + keyLead}
}

// watchDenyList loads the deny-list and keeps it current until upkeep ends: every revocation,
// on this node or any other sharing the store, is pushed to it (docs/design.md, "Revocation").
// It returns once the first load is done (or failed), so the edge never starts without it.
func (s *Server) watchDenyList(ctx, upkeep context.Context) error {
	first := make(chan error, 1)
	var started, stale atomic.Bool
	resynced := func(err error) {
		if !started.Swap(true) {
			first <- err
			return
		}
		switch {
		case err != nil:
			stale.Store(true)
			s.log.Warn("cannot reread the deny-list; revocations from other nodes may be missed until the next resync", zap.Error(err))
		case stale.Swap(false):
			s.log.Info("deny-list resynced")
		}
	}
	lost := func(err error) {
		s.log.Warn("lost the deny-list subscription; revocations from other nodes wait for the reconnection", zap.Error(err))
	}
	if err := s.state.Watch(upkeep, s.denied, resynced, lost); err != nil {
		return err
	}
	select {
	case err := <-first:
		return err
	case <-time.After(denyListSubscribeWait):
		// Not subscribed yet (the store is slow to answer): start from what is stored; the
		// subscription resyncs once it is up.
		return s.state.Load(ctx, s.denied)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// denyListSubscribeWait bounds how long New waits for the deny-list subscription.
const denyListSubscribeWait = 5 * time.Second

// maintain runs the background upkeep until Close: key rotation, and key reloads so keys
// rotated by another node are picked up.
func (s *Server) maintain(ctx context.Context) {
	defer close(s.done)
	keyTick := time.NewTicker(keyUpkeep)
	defer keyTick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-keyTick.C:
			if err := s.keys.Rotate(ctx, s.rotation()); err != nil && ctx.Err() == nil {
				s.log.Warn("signing key upkeep failed", zap.Error(err))
			}
		}
	}
}

// Close stops the background upkeep. The store stays open: it belongs to the caller.
func (s *Server) Close() error {
	s.stop()
	<-s.done
	return nil
}
