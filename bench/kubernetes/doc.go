// Package kubernetes holds no code: its folder holds the Kubernetes
// manifests that run paybench's load generators as an Indexed Job and
// merge their results (README.md there), and its test checks them offline.
package kubernetes
