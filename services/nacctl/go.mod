module github.com/notatcompany/notatcompany/services/nacctl

go 1.26.0

require github.com/notatcompany/notatcompany/services/shared v0.0.0

require (
	github.com/google/uuid v1.6.0 // indirect
	golang.org/x/oauth2 v0.37.0 // indirect
)

replace (
	github.com/notatcompany/notatcompany/proto => ../../proto
	github.com/notatcompany/notatcompany/services/shared => ../shared
)
