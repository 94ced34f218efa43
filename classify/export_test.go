package classify

// InPlace reports whether the start-up probe confirmed grpc-go's Status layout, so that
// status details are read in place rather than through a deep copy.
func InPlace() bool { return inPlace }
