package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats-server/v2/server"
)

// natsLog hands the embedded NATS server's notices, warnings and errors (slow consumers, store
// errors, lost requests) to the process's log, as component nats; its notices go at debug level.
func natsLog(log *slog.Logger) server.Logger { return natsLogger{log.With("component", "nats")} }

type natsLogger struct{ log *slog.Logger }

func (l natsLogger) emit(level slog.Level, format string, v ...any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, v...))
	}
}

func (l natsLogger) Noticef(format string, v ...any) { l.emit(slog.LevelDebug, format, v...) }
func (l natsLogger) Warnf(format string, v ...any)   { l.emit(slog.LevelWarn, format, v...) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.emit(slog.LevelError, format, v...) }
func (l natsLogger) Errorf(format string, v ...any)  { l.emit(slog.LevelError, format, v...) }
func (l natsLogger) Debugf(format string, v ...any)  { l.emit(slog.LevelDebug, format, v...) }
func (l natsLogger) Tracef(format string, v ...any)  {}
