//go:build tools

// Package tools makes the kube-scheduler main package part of this module's build list.
package tools

import _ "k8s.io/kubernetes/cmd/kube-scheduler"
