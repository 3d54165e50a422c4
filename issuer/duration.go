package issuer

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration in a configuration. In JSON it is a number of nanoseconds, as
// Caddy writes durations when it adapts a Caddyfile, or a string such as "10m", "1h30m" or
// "30d" (days), as people write them.
type Duration time.Duration

// UnmarshalJSON reads a number of nanoseconds or a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := ParseDuration(s)
		if err != nil {
			return err
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("a duration is a number of nanoseconds or a string such as \"10m\": %w", err)
	}
	*d = Duration(n)
	return nil
}

// String is the duration as time.Duration prints it.
func (d Duration) String() string { return time.Duration(d).String() }

// ParseDuration reads a duration as time.ParseDuration does, and also days ("30d", "1d12h"),
// as Caddy's own durations do.
func ParseDuration(s string) (time.Duration, error) {
	var b strings.Builder
	num := 0 // start of the number before the current unit
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9' || c == '.':
		case c == 'd':
			days, err := strconv.ParseFloat(s[num:i], 64)
			if err != nil {
				return 0, fmt.Errorf("%q is not a duration such as 10m, 1h30m or 30d", s)
			}
			b.WriteString(strconv.FormatFloat(days*24, 'f', -1, 64) + "h")
			num = i + 1
			continue
		default:
			for i+1 < len(s) && !(s[i+1] >= '0' && s[i+1] <= '9' || s[i+1] == '.') {
				i++ // the rest of a unit such as "ms"
			}
			b.WriteString(s[num : i+1])
			num = i + 1
			continue
		}
	}
	b.WriteString(s[num:])
	v, err := time.ParseDuration(b.String())
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration such as 10m, 1h30m or 30d", s)
	}
	return v, nil
}
