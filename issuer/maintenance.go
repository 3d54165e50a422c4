package issuer

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tollgate-auth/tollgate/issuer/keys"
	"github.com/tollgate-auth/tollgate/issuer/state"
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
//
// While the store is out of reach the edge keeps verifying with the keys and the deny-list it
// holds (both in memory), but revocations made meanwhile by other nodes cannot reach it: the
// deny-list is then stale, which denyListHealth says in the log and in
// tollgate_issuer_denylist_stale, until the reread that follows the reconnection.
func (s *Server) watchDenyList(ctx, upkeep context.Context) error {
	first := make(chan error, 1)
	h := &denyListHealth{issuer: s.issuer, log: s.log, denied: s.denied, waiting: first, stale: true}
	if s.metrics != nil {
		h.resynced = s.metrics.denyResyncs.WithLabelValues(outcomeOK)
		h.failed = s.metrics.denyResyncs.WithLabelValues(resultError)
	}
	if err := s.state.Watch(upkeep, s.denied, h.resync, h.lost); err != nil {
		return err
	}
	select {
	case err := <-first:
		if err != nil {
			return err
		}
	case <-time.After(denyListSubscribeWait):
		// Not subscribed yet (the store is slow to answer): start from what is stored; the
		// subscription resyncs once it is up, and until then the copy is stale.
		if !h.notSubscribed() {
			// The first reread came in meanwhile.
			if err := <-first; err != nil {
				return err
			}
		} else if err := s.state.Load(ctx, s.denied); err != nil {
			return err
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	if s.metrics != nil {
		s.metrics.denyStale.add(h)
		context.AfterFunc(upkeep, func() { s.metrics.denyStale.remove(h) })
	}
	return nil
}

// denyListHealth follows whether a node's deny-list may be missing revocations: stale from a
// lost subscription (or a failed reread) until a reread after the reconnection succeeds. It
// logs a warning once when the copy turns stale and an info line when it is current again;
// the losses and failed reconnections in between are logged at debug.
type denyListHealth struct {
	issuer           string
	log              *zap.Logger
	denied           *state.DenyList
	resynced, failed prometheus.Counter // tollgate_issuer_denylist_resyncs_total; nil without metrics

	mu sync.Mutex
	// waiting receives the outcome of the first reread, which New waits for; nil after it.
	waiting chan<- error
	stale   bool
	// warned: the current stale stretch has been announced in the log (the first load at
	// start is not an outage, and New reports its failure itself).
	warned bool
	since  time.Time // when the copy turned stale
}

// resync is told the outcome of every reread of the stored deny-list.
func (h *denyListHealth) resync(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		if h.failed != nil {
			h.failed.Inc()
		}
	} else if h.resynced != nil {
		h.resynced.Inc()
	}
	switch {
	case h.waiting != nil:
		h.waiting <- err
		h.waiting = nil
		if err != nil {
			return // New fails with it
		}
	case err != nil:
		h.turnStale("cannot reread the deny-list", err)
		return
	}
	if h.stale {
		if h.warned {
			h.log.Info("deny-list is current again: reread after the store came back",
				zap.String("issuer", h.issuer), zap.Duration("stale_for", time.Since(h.since).Round(time.Millisecond)),
				zap.Int("entries", h.denied.Len()))
		}
		h.stale, h.warned = false, false
	}
}

// lost is told why the subscription stopped delivering.
func (h *denyListHealth) lost(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.turnStale("lost the deny-list subscription", err)
}

// notSubscribed marks the copy stale when New stops waiting for the subscription and starts
// from the stored deny-list. It returns false if the first reread came in meanwhile: its
// outcome is then on the waiting channel, and nothing is stale.
func (h *denyListHealth) notSubscribed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.waiting == nil {
		return false
	}
	h.waiting = nil
	h.turnStale("the deny-list subscription is not up yet", errors.New("no answer within "+denyListSubscribeWait.String()))
	return true
}

// turnStale marks the copy stale, logging it once per stale stretch. h.mu is held.
func (h *denyListHealth) turnStale(why string, err error) {
	if !h.stale {
		h.stale, h.since = true, time.Now()
	}
	if h.warned {
		h.log.Debug(why, zap.String("issuer", h.issuer), zap.Error(err))
		return
	}
	if h.since.IsZero() { // stale since the start
		h.since = time.Now()
	}
	h.warned = true
	h.log.Warn("deny-list is stale: "+why+"; tokens are still verified with the keys and revocations held here, "+
		"but revocations made on other nodes are missed until the store is back",
		zap.String("issuer", h.issuer), zap.Error(err))
}

// isStale reports whether the copy may be missing revocations.
func (h *denyListHealth) isStale() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stale
}

// denyListSubscribeWait bounds how long New waits for the deny-list subscription.
const denyListSubscribeWait = 5 * time.Second

// maintain runs the background upkeep until Close: key rotation, and key reloads so keys
// rotated by another node are picked up; and the sweep of removed users' passkeys.
func (s *Server) maintain(ctx context.Context) {
	defer close(s.done)
	keyTick := time.NewTicker(keyUpkeep)
	defer keyTick.Stop()
	passkeyTick := time.NewTicker(passkeySweepEvery)
	defer passkeyTick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-keyTick.C:
			if err := s.keys.Rotate(ctx, s.rotation()); err != nil && ctx.Err() == nil {
				s.log.Warn("signing key upkeep failed", zap.Error(err))
			}
		case <-passkeyTick.C:
			s.sweepPasskeys(ctx, time.Now()) // passkeys of removed users (passkey.go)
		}
	}
}

// Close stops the background upkeep. The store stays open: it belongs to the caller.
func (s *Server) Close() error {
	s.stop()
	<-s.done
	return nil
}
