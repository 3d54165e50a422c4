package issuer

import (
	"net/http"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const debugLevel = zapcore.DebugLevel

// logFields describes a failed request for the log: path, error code and cause. It never
// includes the request body, query or headers, which may hold secrets.
func logFields(r *http.Request, e *Error) []zap.Field {
	f := []zap.Field{zap.String("path", r.URL.Path), zap.String("error", e.Code)}
	if e.Description != "" {
		f = append(f, zap.String("description", e.Description))
	}
	if e.cause != nil {
		f = append(f, zap.Error(e.cause))
	}
	return f
}
