// Package depcheck holds the test that pins the direction of imports between faultline's
// packages: errs is a leaf, classify and retry stand on errs only, retry does not import the
// grpc root package, and no library package imports interceptor, the examples or the
// integration tests.
package depcheck
