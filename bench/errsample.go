package bench

import (
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/paybench/paybench/impl"
)

// ErrorSampleMax bounds the length in bytes of one Stats.ErrorSamples
// message; a longer one is cut at a character boundary and ends in "…".
const ErrorSampleMax = 200

// errorSample is the first error of one class a worker saw, and when.
type errorSample struct {
	msg string
	at  time.Duration // since the start of the run
}

// errorSamples is one worker's first error per class. Only the worker's
// goroutine writes it, and only the first time it sees a class, so the
// per-operation path neither locks nor allocates once every class it meets
// has its sample; Run reads it after the workers ended.
type errorSamples map[string]errorSample

// note keeps err as the sample of class unless the worker has one.
func (s *errorSamples) note(class string, err error, at time.Duration) {
	if _, ok := (*s)[class]; ok || err == nil {
		return
	}
	if *s == nil {
		*s = errorSamples{}
	}
	(*s)[class] = errorSample{msg: SampleText(err), at: at}
}

// mergeSamples puts into dst, for each class, the message of the earliest
// sample of all workers'.
func mergeSamples(dst map[string]string, workers []errorSamples) {
	first := map[string]errorSample{}
	for _, w := range workers {
		for class, s := range w {
			if f, ok := first[class]; !ok || s.at < f.at {
				first[class] = s
			}
		}
	}
	for class, s := range first {
		dst[class] = s.msg
	}
}

// urlCredentials matches the user-info part of a URL ("scheme://user:pw@").
var urlCredentials = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^\s/@]*@`)

// SampleText returns the words to report for err: the Redis error reply it
// carries (impl.Reply), else its whole text; on one line (the first),
// control characters turned into spaces, the credentials of any URL
// replaced by "xxxxx", at most ErrorSampleMax bytes.
func SampleText(err error) string {
	if err == nil {
		return ""
	}
	msg, ok := impl.Reply(err)
	if !ok {
		msg = err.Error()
	}
	if i := strings.IndexAny(msg, "\r\n"); i >= 0 {
		msg = msg[:i]
	}
	msg = urlCredentials.ReplaceAllString(msg, "${1}xxxxx@")
	msg = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, msg)
	msg = strings.TrimSpace(msg)
	return truncate(msg, ErrorSampleMax)
}

// truncate cuts s to at most n bytes at a character boundary, ending in
// "…" when it cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	cut := n - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
