package gateway

import (
	"log/slog"
	"time"
)

const slogInfo = slog.LevelInfo

func attrString(k, v string) slog.Attr      { return slog.String(k, v) }
func attrInt(k string, v int) slog.Attr     { return slog.Int(k, v) }
func attrInt64(k string, v int64) slog.Attr { return slog.Int64(k, v) }
func attrDur(k string, d time.Duration) slog.Attr {
	return slog.Float64(k+"_ms", float64(d.Microseconds())/1000)
}
