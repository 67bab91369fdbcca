package scenarios

import (
	"fmt"

	"github.com/paybench/paybench/impl"
)

// Figures of a stock cell whose strategy sends WAIT after each write
// (impl.ConnConfig.WaitReplicas).
const (
	// figWritesUnconfirmed counts the writes answered OK that the WAIT
	// after them did not confirm: fewer replicas than asked acknowledged
	// them within the time-out. The write happened on the master; only
	// its copy on the replicas is unconfirmed.
	figWritesUnconfirmed = "writes_unconfirmed"
	// figLostWaitConfirmed counts the purchases answered OK, missing from
	// the server's record, that WAIT had confirmed (oversell only): what
	// WAIT did not protect.
	figLostWaitConfirmed = "lost_writes_wait_confirmed"
)

// waitSetting describes the WAIT the backend's strategy sends after each
// write ("WAIT 1 1000ms"), or "" when it sends none.
func waitSetting(be impl.Backend, strategy string) string {
	set := be.Settings()
	n := set[impl.SettingWaitReplicas]
	if n == "" || n == "0" {
		return ""
	}
	for _, s := range impl.WaitStrategies() {
		if s == strategy {
			return fmt.Sprintf("WAIT %s %s", n, set[impl.SettingWaitTimeout])
		}
	}
	return ""
}
