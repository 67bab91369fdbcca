package runner

import "os"

// hostname names this load generator in the result ("" when unknown).
func hostname() string {
	h, _ := os.Hostname()
	return h
}

// pid is this process's id.
func pid() int { return os.Getpid() }
