package bench

import (
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/paybench/paybench/reports/result"
)

// trackedModules are the libraries whose versions a reader needs to compare
// two results on the same footing.
var trackedModules = []string{
	"github.com/redis/go-redis/v9",
	"github.com/redis/rueidis",
	"github.com/HdrHistogram/hdrhistogram-go",
	// The library strategies' modules (rueidislock is in rueidis's).
	"github.com/go-redsync/redsync/v4",
	"github.com/bsm/redislock",
	"github.com/go-redis/redis_rate/v10",
}

// Fairness describes this process and the server: what a reader needs to
// know that two cells were measured on the same footing. clients maps a
// backend name to its settings.
func Fairness(server result.Server, clients map[string]map[string]string) result.Fairness {
	f := result.Fairness{
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		NumCPU:     runtime.NumCPU(),
		GoVersion:  runtime.Version(),
		OS:         runtime.GOOS,
		Arch:       runtime.GOARCH,
		Libraries:  ModuleVersions(),
		Clients:    clients,
		Server:     server,
	}
	return f
}

// ModuleVersions returns the versions of the client libraries compiled in.
func ModuleVersions() map[string]string {
	out := map[string]string{}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return out
	}
	for _, d := range bi.Deps {
		for _, m := range trackedModules {
			if d.Path == m {
				v := d.Version
				if d.Replace != nil {
					v = d.Replace.Version
				}
				out[m] = v
			}
		}
	}
	return out
}

// Commit returns the VCS revision paybench was built from ("" when the
// build carries none), with "+dirty" when the tree had changes.
func Commit() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	return strings.TrimSpace(rev + dirty)
}

// Version returns paybench's module version as the build recorded it: a
// release tag, or Go's pseudo-version of the commit built (with +dirty
// for a modified tree); "devel" when the build carries none (go run, go
// test).
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok || bi.Main.Version == "" || bi.Main.Version == "(devel)" {
		return "devel"
	}
	return bi.Main.Version
}
