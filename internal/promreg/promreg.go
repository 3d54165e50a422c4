// Package promreg registers Prometheus collectors that may already be registered: Caddy gives
// every configuration one registry, which several issuers and protectors of it share.
package promreg

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c in reg, or returns the collector of the same kind already registered
// under its name, so that every user of a series counts into one collector.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}
