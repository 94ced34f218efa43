// Package depcheck holds the tests that pin facts about the repository as a whole: the
// direction of imports between faultline's packages (errs is a leaf, classify and retry
// stand on errs only, retry does not import the grpc root package, and no library package
// imports interceptor, the examples or the integration tests), and that the README says what
// running its test command needs.
package depcheck
