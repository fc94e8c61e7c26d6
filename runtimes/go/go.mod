module mayfly/runtime

go 1.19
