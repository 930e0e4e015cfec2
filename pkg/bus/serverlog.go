package bus

import (
	"context"
	"fmt"
	"log/slog"
)

// serverLogger hands the embedded server's warnings and errors (slow consumers, store errors,
// lost requests) to the service's log; its notices go at debug level.
type serverLogger struct{ log *slog.Logger }

func (l serverLogger) emit(level slog.Level, format string, v ...any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, v...))
	}
}

func (l serverLogger) Noticef(format string, v ...any) { l.emit(slog.LevelDebug, format, v...) }
func (l serverLogger) Warnf(format string, v ...any)   { l.emit(slog.LevelWarn, format, v...) }
func (l serverLogger) Fatalf(format string, v ...any)  { l.emit(slog.LevelError, format, v...) }
func (l serverLogger) Errorf(format string, v ...any)  { l.emit(slog.LevelError, format, v...) }
func (l serverLogger) Debugf(format string, v ...any)  { l.emit(slog.LevelDebug, format, v...) }
func (l serverLogger) Tracef(format string, v ...any)  {}
