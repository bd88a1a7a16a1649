// go-app prints a greeting for each name on its command line, made by the module
// example.internal/greet (which needs example.internal/Upper): two modules locked by go.sum,
// served by sealroom from a GOPROXY directory.
package main

import (
	"fmt"
	"os"
	"strings"

	"example.internal/greet"
)

// greetings is one greeting per name, one a line.
func greetings(names []string) string {
	var out strings.Builder
	for _, name := range names {
		out.WriteString(greet.Hello(name))
		out.WriteString("\n")
	}
	return out.String()
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: go-app NAME...")
		os.Exit(2)
	}
	fmt.Print(greetings(os.Args[1:]))
}
