package keys

import (
	"context"
	"fmt"
	"time"
)

// Rotation says when signing keys are replaced and retired.
type Rotation struct {
	// Every is how long a key signs before a new one replaces it. Zero turns rotation off.
	Every time.Duration
	// Lead is how long a new key is published in the JWKS before it signs.
	Lead time.Duration
	// KeepFor is how long a replaced key stays published: at least the lifetime of the
	// longest-lived token it signed.
	KeepFor time.Duration
}

// SetLead sets how long a new key is published before it signs (see Rotation.Lead).
func (m *Manager) SetLead(lead time.Duration) { m.lead = lead }

// Rotate adds a new key for every algorithm whose newest key is older than r.Every, removes
// keys replaced longer ago than r.KeepFor, and reloads. Several nodes may rotate at once: each
// may add a key, all are published, and every node signs with the same newest one.
func (m *Manager) Rotate(ctx context.Context, r Rotation) error {
	if r.Every <= 0 {
		return m.Reload(ctx)
	}
	if err := m.Reload(ctx); err != nil {
		return err
	}
	now := time.Now()
	ks := m.set.Load()
	for _, alg := range m.algs {
		var newest *key
		for _, k := range ks.byKID {
			if k.alg == alg && (newest == nil || newer(k, newest)) {
				newest = k
			}
		}
		if newest == nil || now.Sub(newest.created) >= r.Every {
			if err := m.generate(ctx, alg); err != nil {
				return err
			}
		}
	}
	// A key was replaced when a newer key of its algorithm began to sign.
	for _, k := range ks.byKID {
		replacedAt := time.Time{}
		for _, other := range ks.byKID {
			signsFrom := other.created.Add(r.Lead)
			if other.alg == k.alg && newer(other, k) && !signsFrom.After(now) && (replacedAt.IsZero() || signsFrom.Before(replacedAt)) {
				replacedAt = signsFrom
			}
		}
		if !replacedAt.IsZero() && now.Sub(replacedAt) > r.KeepFor && k != ks.current[k.alg] {
			if err := m.store.Delete(ctx, Bucket, k.kid); err != nil {
				return fmt.Errorf("keys: retiring %s: %w", k.kid, err)
			}
		}
	}
	return m.Reload(ctx)
}
