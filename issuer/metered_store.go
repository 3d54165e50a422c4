package issuer

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate-auth/tollgate/issuer/keys"
	"github.com/tollgate-auth/tollgate/issuer/state"
	"github.com/tollgate-auth/tollgate/issuer/store"
)

// meteredStore is a store.Store that measures every operation of the one it wraps
// (tollgate_issuer_store_*, metrics.go) and otherwise passes it on unchanged, Publish and
// Subscribe included: every guarantee is the wrapped store's.
type meteredStore struct {
	st     store.Store
	m      *metrics
	bucket map[string]int // label index of a known bucket or topic; read-only
	labels []string       // labels by index; the last is "other"
	// series holds each operation's children by label index, made on first use, so an
	// operation costs no label lookup.
	series [numStoreOps][]atomic.Pointer[storeSeries]
}

var _ store.Store = (*meteredStore)(nil)

// storeOp is an operation of the store contract, the op label.
type storeOp int

const (
	opGet storeOp = iota
	opPut
	opCreate
	opTake
	opDelete
	opUpdate
	opIncr
	opScan
	opPublish
	opSubscribe
	numStoreOps
)

var storeOpNames = [numStoreOps]string{"get", "put", "create", "take", "delete", "update", "incr", "scan", "publish", "subscribe"}

type storeSeries struct {
	duration prometheus.Observer
	errors   prometheus.Counter
}

// meter wraps st so that m measures it.
func (m *metrics) meter(st store.Store) *meteredStore {
	ms := &meteredStore{st: st, m: m, bucket: map[string]int{}}
	for _, b := range append(state.Buckets(), keys.Bucket) {
		ms.bucket[string(b)] = len(ms.labels)
		ms.labels = append(ms.labels, string(b))
	}
	for _, t := range state.Topics() {
		ms.bucket[t] = len(ms.labels)
		ms.labels = append(ms.labels, t)
	}
	ms.labels = append(ms.labels, "other")
	for op := range ms.series {
		ms.series[op] = make([]atomic.Pointer[storeSeries], len(ms.labels))
	}
	return ms
}

// done records an operation on bucket (or topic) b that started at start and ended with err.
// failed reports whether err is a failure of the store, not one of its answers.
func (ms *meteredStore) done(op storeOp, b string, start time.Time, err error, failed bool) {
	i, ok := ms.bucket[b]
	if !ok {
		i = len(ms.labels) - 1
	}
	p := &ms.series[op][i]
	s := p.Load()
	if s == nil { // racing first uses make the same children
		s = &storeSeries{duration: ms.m.storeDuration.WithLabelValues(storeOpNames[op], ms.labels[i]),
			errors: ms.m.storeErrors.WithLabelValues(storeOpNames[op], ms.labels[i])}
		p.Store(s)
	}
	s.duration.Observe(time.Since(start).Seconds())
	if failed && err != nil {
		s.errors.Inc()
	}
}

// answer reports whether err is an answer of the contract rather than a failure.
func answer(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrExists)
}

func (ms *meteredStore) Get(ctx context.Context, b store.Bucket, key string) ([]byte, error) {
	start := time.Now()
	v, err := ms.st.Get(ctx, b, key)
	ms.done(opGet, string(b), start, err, !answer(err))
	return v, err
}

func (ms *meteredStore) Put(ctx context.Context, b store.Bucket, key string, value []byte, ttl time.Duration) error {
	start := time.Now()
	err := ms.st.Put(ctx, b, key, value, ttl)
	ms.done(opPut, string(b), start, err, true)
	return err
}

func (ms *meteredStore) Create(ctx context.Context, b store.Bucket, key string, value []byte, ttl time.Duration) error {
	start := time.Now()
	err := ms.st.Create(ctx, b, key, value, ttl)
	ms.done(opCreate, string(b), start, err, !answer(err))
	return err
}

func (ms *meteredStore) Take(ctx context.Context, b store.Bucket, key string) ([]byte, error) {
	start := time.Now()
	v, err := ms.st.Take(ctx, b, key)
	ms.done(opTake, string(b), start, err, !answer(err))
	return v, err
}

func (ms *meteredStore) Delete(ctx context.Context, b store.Bucket, key string) error {
	start := time.Now()
	err := ms.st.Delete(ctx, b, key)
	ms.done(opDelete, string(b), start, err, true)
	return err
}

// Update tells the store's failures from the errors fn returned (a refresh token reused, a
// pending request answered): only the former count as errors.
func (ms *meteredStore) Update(ctx context.Context, b store.Bucket, key string, fn store.UpdateFunc) error {
	var fnErr error
	start := time.Now()
	err := ms.st.Update(ctx, b, key, func(cur []byte, found bool) ([]byte, time.Duration, error) {
		next, ttl, err := fn(cur, found)
		fnErr = err
		return next, ttl, err
	})
	ms.done(opUpdate, string(b), start, err, fnErr == nil || !errors.Is(err, fnErr))
	return err
}

func (ms *meteredStore) Incr(ctx context.Context, b store.Bucket, key string, by int64, ttl time.Duration) (int64, error) {
	start := time.Now()
	n, err := ms.st.Incr(ctx, b, key, by, ttl)
	ms.done(opIncr, string(b), start, err, true)
	return n, err
}

// Scan tells the store's failures from the errors fn returned, as Update does.
func (ms *meteredStore) Scan(ctx context.Context, b store.Bucket, fn func(key string, value []byte) error) error {
	var fnErr error
	start := time.Now()
	err := ms.st.Scan(ctx, b, func(key string, value []byte) error {
		fnErr = fn(key, value)
		return fnErr
	})
	ms.done(opScan, string(b), start, err, fnErr == nil || !errors.Is(err, fnErr))
	return err
}

func (ms *meteredStore) Publish(ctx context.Context, topic string, msg []byte) error {
	start := time.Now()
	err := ms.st.Publish(ctx, topic, msg)
	ms.done(opPublish, topic, start, err, true)
	return err
}

// Subscribe measures setting the subscription up; the delivery is the wrapped store's.
func (ms *meteredStore) Subscribe(ctx context.Context, topic string, sub store.Subscriber) error {
	start := time.Now()
	err := ms.st.Subscribe(ctx, topic, sub)
	ms.done(opSubscribe, topic, start, err, true)
	return err
}

// Close closes the wrapped store.
func (ms *meteredStore) Close() error { return ms.st.Close() }
