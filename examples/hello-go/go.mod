module hello-go

go 1.19

require mayfly/runtime v0.0.0

replace mayfly/runtime => ../../runtimes/go
