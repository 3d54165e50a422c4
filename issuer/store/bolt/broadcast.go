package bolt

import (
	"context"
	"errors"
	"sync"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// hub is Publish and Subscribe of one Store. A bolt file is open in one process only, so
// every Server that shares the file shares this Store value (Caddy's usage pool hands the same
// one to the old and the new configuration during a reload): delivering in process reaches
// every holder of the store. Nothing is lost between a Publish and its subscribers, so Resync
// is called only once, when the subscription starts.
type hub struct {
	mu     sync.Mutex
	closed bool
	subs   map[string]map[*store.Subscriber]struct{}
}

// Publish calls the Message function of every subscriber of topic, before it returns.
func (s *Store) Publish(ctx context.Context, topic string, msg []byte) error {
	if err := s.begin(ctx, "publish", topic); err != nil {
		return err
	}
	s.hub.mu.Lock()
	subs := make([]*store.Subscriber, 0, len(s.hub.subs[topic]))
	for sub := range s.hub.subs[topic] {
		subs = append(subs, sub)
	}
	s.hub.mu.Unlock()
	for _, sub := range subs {
		sub.Message(append([]byte(nil), msg...))
	}
	return nil
}

// Subscribe registers sub for topic and calls its Resync once, before it returns. The
// subscription ends when ctx does or the store is closed.
func (s *Store) Subscribe(ctx context.Context, topic string, sub store.Subscriber) error {
	if err := s.begin(ctx, "subscribe", topic); err != nil {
		return err
	}
	if sub.Message == nil || sub.Resync == nil {
		return errors.New("store/bolt: subscribe: Message and Resync are required")
	}
	h := &s.hub
	p := &sub
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return unavailable("subscribe", errClosed)
	}
	if h.subs == nil {
		h.subs = map[string]map[*store.Subscriber]struct{}{}
	}
	if h.subs[topic] == nil {
		h.subs[topic] = map[*store.Subscriber]struct{}{}
	}
	h.subs[topic][p] = struct{}{}
	h.mu.Unlock()
	context.AfterFunc(ctx, func() {
		h.mu.Lock()
		delete(h.subs[topic], p)
		h.mu.Unlock()
	})
	sub.Resync()
	return nil
}

// begin checks a Publish or Subscribe before it runs.
func (s *Store) begin(ctx context.Context, op, topic string) error {
	if topic == "" {
		return errors.New("store/bolt: " + op + ": empty topic")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return unavailable(op, errClosed)
	}
	return nil
}

// close ends every subscription.
func (h *hub) close() {
	h.mu.Lock()
	h.closed = true
	h.subs = nil
	h.mu.Unlock()
}
