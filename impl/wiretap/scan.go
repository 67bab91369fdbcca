package wiretap

import "bytes"

// scanner follows a RESP2/RESP3 reply stream across reads and counts the
// error replies that start with "MOVED " or "ASK ", at any depth (a
// transaction's queued replies included). It tells a line from a bulk
// payload by the RESP framing — a bulk string is skipped by its length —
// so data that merely contains "-MOVED" is never counted.
type scanner struct {
	state scanState
	// isErr: the line being read is a simple error ('-').
	isErr bool
	pre   [6]byte
	npre  int
	// bulk accumulates a bulk length; neg: it is negative (a null).
	bulk int64
	neg  bool
	// skip is what remains of a bulk payload and its CRLF.
	skip int64
}

type scanState uint8

const (
	atType   scanState = iota // the next byte is a reply's type
	inLine                    // inside a line reply or an aggregate header, up to '\n'
	inLength                  // inside a bulk length, up to '\n'
	inBody                    // inside a bulk payload
)

// scan consumes p and returns the MOVED and ASK replies that ended in it.
func (s *scanner) scan(p []byte) (moved, ask int64) {
	for len(p) > 0 {
		switch s.state {
		case atType:
			switch p[0] {
			case '$', '=', '!': // bulk string, verbatim string, bulk error
				s.state, s.bulk, s.neg = inLength, 0, false
			default: // + - : _ # , ( and the aggregates' headers * % ~ > |
				s.state, s.isErr, s.npre = inLine, p[0] == '-', 0
			}
			p = p[1:]
		case inLine:
			i := bytes.IndexByte(p, '\n')
			end := i
			if end < 0 {
				end = len(p)
			}
			if s.isErr && s.npre < len(s.pre) {
				s.npre += copy(s.pre[s.npre:], p[:end])
			}
			if i < 0 {
				return moved, ask
			}
			if s.isErr {
				switch {
				case s.npre >= 6 && string(s.pre[:6]) == "MOVED ":
					moved++
				case s.npre >= 4 && string(s.pre[:4]) == "ASK ":
					ask++
				}
			}
			s.state = atType
			p = p[i+1:]
		case inLength:
			b := p[0]
			p = p[1:]
			switch {
			case b >= '0' && b <= '9':
				s.bulk = s.bulk*10 + int64(b-'0')
			case b == '-':
				s.neg = true
			case b == '\n':
				if s.neg {
					s.state = atType // a null bulk string has no payload
				} else {
					s.state, s.skip = inBody, s.bulk+2
				}
			}
		case inBody:
			n := min(s.skip, int64(len(p)))
			s.skip -= n
			p = p[n:]
			if s.skip == 0 {
				s.state = atType
			}
		}
	}
	return moved, ask
}
