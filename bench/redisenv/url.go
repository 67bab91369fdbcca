package redisenv

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/redis/go-redis/v9"
)

// redactedPassword replaces every password Redact hides.
const redactedPassword = "xxxxx"

// unparsableURL is what Redact returns for input it cannot parse as a
// hierarchical URL: such input might hold a password anywhere.
const unparsableURL = "<unparsable URL, not shown>"

// parseURL parses raw with go-redis's own parser and applies an explicit
// password (when not empty) over the URL's. It returns the options and the
// URL with the effective password in it. Errors wrap ErrBadURL and never
// contain a password.
func parseURL(raw, password string) (*redis.Options, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", fmt.Errorf("%w %s: %s", ErrBadURL, Redact(raw), parseReason(err))
	}
	switch {
	case u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix":
		return nil, "", fmt.Errorf("%w %s: scheme must be redis://, rediss:// or unix://", ErrBadURL, Redact(raw))
	case u.Opaque != "":
		return nil, "", fmt.Errorf("%w %s: want %s://host... (no // after the scheme)", ErrBadURL, Redact(raw), u.Scheme)
	}
	ro, err := redis.ParseURL(raw)
	if err != nil {
		return nil, "", libraryURLError(raw, password, u, err)
	}
	if password == "" {
		return ro, raw, nil
	}
	ro.Password = password
	u.User = url.UserPassword(ro.Username, password)
	return ro, u.String(), nil
}

// libraryURLError is ErrBadURL for raw (parsed as u) refused by go-redis's
// URL parser with err, every form of the password scrubbed from err's text.
func libraryURLError(raw, password string, u *url.URL, err error) error {
	secrets := []string{password}
	if u.User != nil {
		p, _ := u.User.Password()
		secrets = append(secrets, p, url.QueryEscape(p), url.PathEscape(p))
	}
	return fmt.Errorf("%w %s: %s", ErrBadURL, Redact(raw), scrub(err.Error(), secrets...))
}

var quoted = regexp.MustCompile(`"[^"]*"`)

// parseReason returns net/url's reason without the quoted pieces of input it
// may carry (the URL itself, an escape, a port), any of which could be part
// of a password.
func parseReason(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return "not a valid URL: " + quoted.ReplaceAllString(oneLine(err.Error()), `"…"`)
}

// Redact returns rawURL with any password replaced by "xxxxx": the one in
// the user info (the user name is kept) and the value of any query
// parameter whose name suggests a secret (password, pass, pwd, secret,
// token, auth...). The fragment is dropped. Input that does not parse as a
// hierarchical URL yields a fixed placeholder, never the input, since it
// might contain a password anywhere.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Opaque != "" {
		return unparsableURL
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), redactedPassword)
		}
	}
	if u.RawQuery != "" {
		parts := strings.Split(u.RawQuery, "&")
		for i, p := range parts {
			k, _, _ := strings.Cut(p, "=")
			name, err := url.QueryUnescape(k)
			if err != nil || secretParam(name) {
				parts[i] = k + "=" + redactedPassword
			}
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// secretParam reports whether a query parameter's name suggests its value
// is a secret.
func secretParam(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"pass", "pwd", "secret", "token", "auth", "cred", "key"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// scrub replaces every non-empty secret in msg by "xxxxx" and makes msg
// one line.
func scrub(msg string, secrets ...string) string {
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, redactedPassword)
		}
	}
	return oneLine(msg)
}

// oneLine joins the lines of msg with spaces.
func oneLine(msg string) string {
	if !strings.ContainsAny(msg, "\r\n") {
		return msg
	}
	return strings.Join(strings.Fields(msg), " ")
}
