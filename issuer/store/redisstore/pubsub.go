package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// Intervals of a subscription's upkeep.
const (
	// pubsubCheck is how long a subscription waits for a message before it pings the server;
	// one silent for three of these counts as lost.
	pubsubCheck = time.Second
	// pubsubRetryMax bounds the pause between two attempts to subscribe again.
	pubsubRetryMax = 2 * time.Second
)

// channel is the Redis Pub/Sub channel of topic: it starts with the key prefix, so that
// issuers sharing one Redis hear only their own messages.
func (s *Store) channel(topic string) string { return s.prefix + ":topic:" + topic }

// Publish sends msg with PUBLISH to every store subscribed to topic on this Redis server.
func (s *Store) Publish(ctx context.Context, topic string, msg []byte) error {
	if err := s.beginTopic(ctx, "publish", topic); err != nil {
		return err
	}
	if err := s.rdb.Publish(ctx, s.channel(topic), msg).Err(); err != nil {
		return fail(ctx, "publish", err)
	}
	return nil
}

// Subscribe listens to topic on a connection of its own, in a goroutine, until ctx ends or
// the store is closed. Redis confirms every SUBSCRIBE, also the one after a reconnection, and
// each confirmation calls sub.Resync: what was published while the connection was down is
// lost, so the subscriber rereads the store. A connection that fails, or stays silent through
// three pings, is replaced, and sub.Lost is told.
func (s *Store) Subscribe(ctx context.Context, topic string, sub store.Subscriber) error {
	if err := s.beginTopic(ctx, "subscribe", topic); err != nil {
		return err
	}
	if sub.Message == nil || sub.Resync == nil {
		return errors.New("store/redis: subscribe: Message and Resync are required")
	}
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	if s.closed.Load() {
		return unavailable("subscribe", errClosed)
	}
	// The listener ends with ctx or with Close, whichever comes first.
	lctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel)
	s.cancels = append(s.cancels, cancel)
	s.listeners.Go(func() {
		defer stop()
		s.listen(lctx, s.channel(topic), sub)
	})
	return nil
}

// listen keeps a subscription up until ctx ends.
func (s *Store) listen(ctx context.Context, channel string, sub store.Subscriber) {
	for attempt := 0; ; attempt++ {
		subscribed, err := s.listenOnce(ctx, channel, sub)
		if ctx.Err() != nil {
			return
		}
		if subscribed {
			attempt = 0 // a connection that worked starts the back-off again from its shortest pause
		}
		if sub.Lost != nil {
			sub.Lost(fmt.Errorf("%w: redis subscription: %w", store.ErrUnavailable, err))
		}
		pause := min(100*time.Millisecond<<min(attempt, 5), pubsubRetryMax)
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
	}
}

// listenOnce subscribes on a new connection and delivers what it receives, until the
// connection fails or ctx ends. Resyncs run beside the receive loop, one at a time (a request
// for one while one runs makes one more afterwards): a resync of a large bucket takes seconds,
// and meanwhile the loop keeps delivering messages and answering its own health checks.
// subscribed says whether Redis confirmed the subscription before the connection ended.
func (s *Store) listenOnce(ctx context.Context, channel string, sub store.Subscriber) (subscribed bool, err error) {
	ps := s.rdb.Subscribe(ctx, channel)
	defer ps.Close()
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() }) // wakes the Receive below
	defer stop()
	resync := make(chan struct{}, 1)
	var resyncer sync.WaitGroup
	defer resyncer.Wait()
	done := make(chan struct{})
	defer close(done)
	resyncer.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-resync:
				sub.Resync()
			}
		}
	})
	heard := time.Now()
	for {
		msg, err := ps.ReceiveTimeout(ctx, pubsubCheck)
		if err != nil {
			if ctx.Err() != nil {
				return subscribed, ctx.Err()
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return subscribed, err
			}
			if time.Since(heard) > 3*pubsubCheck {
				return subscribed, fmt.Errorf("no answer from the server for %v", time.Since(heard).Round(time.Millisecond))
			}
			if err := ps.Ping(ctx); err != nil {
				return subscribed, err
			}
			continue
		}
		heard = time.Now()
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				subscribed = true
				select {
				case resync <- struct{}{}:
				default: // one is queued already
				}
			}
		case *redis.Message:
			sub.Message([]byte(m.Payload))
		}
	}
}

// beginTopic checks a Publish or Subscribe before it reaches Redis.
func (s *Store) beginTopic(ctx context.Context, op, topic string) error {
	if topic == "" {
		return fmt.Errorf("store/redis: %s: empty topic", op)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return unavailable(op, errClosed)
	}
	return nil
}
