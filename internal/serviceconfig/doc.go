// Package serviceconfig reads the retry settings of a gRPC service config: the JSON string a
// client gives grpc.WithDefaultServiceConfig (gRFC A2, with the retry fields of gRFC A6). It
// accepts exactly what grpc-go v1.85.0 accepts and rejects what it rejects (its
// service_config.go, parseServiceConfig), with one exception: a hedgingPolicy, which grpc-go
// ignores, is an error here, because faultline does not hedge and a policy must never be
// dropped silently.
//
//	cfg, err := serviceconfig.Parse(`{"methodConfig": [{"name": [{}],
//		"retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.1s", "maxBackoff": "1s",
//		"backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]}`)
//	// cfg.Methods[""].Retry.MaxAttempts == 3
//
// Every error is an [*Error] whose Path names the field, as
// "methodConfig[2].retryPolicy.initialBackoff".
//
// The parse result is neutral: package interceptor maps it onto retry.Policy values and a
// retry.TokenBucket. The parts of a service config that stay grpc-go's (loadBalancingConfig,
// loadBalancingPolicy, healthCheckConfig, and a method's timeout, waitForReady and message
// size limits) are checked for their JSON types, as grpc-go decodes them, and otherwise not
// read; grpc-go's own checks of a load-balancing config (a registered policy, its own
// config) are grpc-go's, made when the same string is given to grpc.WithDefaultServiceConfig.
//
// This package is internal to faultline: no compatibility promise.
package serviceconfig
