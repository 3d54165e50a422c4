package issuer

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate-auth/tollgate/issuer/keys"
)

// Intervals of the background upkeep.
const (
	// denyListSync is how often a node of a cluster rereads the deny-list, so a revocation on
	// one node is honoured by every node (and its edge) within a second.
	denyListSync = 500 * time.Millisecond
	// keyUpkeep is how often signing keys are checked for rotation and reloaded.
	keyUpkeep = time.Minute
	// keyLead is how long a new signing key is published before it signs: longer than the
	// JWKS cache lifetime we announce (5 minutes).
	keyLead = 10 * time.Minute
)

// rotation is the key rotation policy of the configuration.
func (s *Server) rotation() keys.Rotation {
	return keys.Rotation{Every: s.cfg.KeyRotation, Lead: keyLead,
		KeepFor: max(s.cfg.AccessTokenTTL, time.Hour) + keyLead}
}

// maintain runs the background upkeep until Close: key rotation, and with a shared store the
// deny-list and key sync with the other nodes.
func (s *Server) maintain(ctx context.Context, shared bool) {
	defer close(s.done)
	keyTick := time.NewTicker(keyUpkeep)
	defer keyTick.Stop()
	var syncTick <-chan time.Time
	if shared {
		t := time.NewTicker(denyListSync)
		defer t.Stop()
		syncTick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-syncTick:
			if err := s.denied.load(ctx, s.store); err != nil && ctx.Err() == nil {
				s.log.Warn("cannot reload the deny-list from the store", zap.Error(err))
			}
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
