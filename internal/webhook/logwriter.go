package webhook

import (
	"context"
	"io"
	"sync"
	"time"
)

// Batched log writes. The webhook logs one line per Pod it rewrites; written
// one by one, each line is a write system call to the container runtime's
// pipe, which under load costs about as much CPU as formatting the line and
// a third as much as the review itself. LogWriter collects lines and writes
// them together.
const (
	// LogFlushInterval is the longest a line waits before it is written.
	LogFlushInterval = 100 * time.Millisecond
	// logFlushSize is how much is collected before a write regardless of the
	// interval: a pipe takes 64 KiB at once.
	logFlushSize = 32 << 10
)

// LogWriter is an io.Writer that batches what is written to it and passes it
// on to the underlying writer every LogFlushInterval (while Run runs), when
// 32 KiB have gathered, and on Flush. Whole writes are kept together, so
// lines from a slog handler stay whole. It is safe for concurrent use.
//
// Lines written in the last interval before a crash that skips Flush are
// lost; a panic in a request is recovered and loses nothing.
type LogWriter struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

// NewLogWriter batches writes to w.
func NewLogWriter(w io.Writer) *LogWriter {
	return &LogWriter{w: w, buf: make([]byte, 0, logFlushSize+4096)}
}

// Write implements io.Writer. The error of an earlier flush is not reported
// here: a log line that cannot be written has nowhere to go.
func (l *LogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if len(l.buf) >= logFlushSize {
		l.flushLocked()
	}
	return len(p), nil
}

// Flush writes out what has gathered.
func (l *LogWriter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
}

func (l *LogWriter) flushLocked() {
	if len(l.buf) == 0 {
		return
	}
	_, _ = l.w.Write(l.buf)
	l.buf = l.buf[:0]
}

// Run flushes every LogFlushInterval until ctx is done, then once more.
func (l *LogWriter) Run(ctx context.Context) {
	t := time.NewTicker(LogFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			l.Flush()
			return
		case <-t.C:
			l.Flush()
		}
	}
}
