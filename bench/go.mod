module github.com/faultline-go/faultline/bench

go 1.26.0

require github.com/faultline-go/faultline v0.0.0

replace github.com/faultline-go/faultline => ../
