module tracepost.dev/logger

go 1.19
