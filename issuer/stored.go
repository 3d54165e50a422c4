package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// getJSON reads the JSON record at key of bucket b: nil, nil when there is none.
func getJSON[T any](ctx context.Context, st store.Store, b store.Bucket, key string) (*T, error) {
	raw, err := st.Get(ctx, b, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, fmt.Errorf("corrupt record in %s: %w", b, err)
	}
	return v, nil
}
