// Package observability holds the checks that tie the shipped dashboard and alert
// rules to the metrics headroomd really exports (see check_test.go), and the
// generators under dashboard/ and cmd/gen.
package observability
