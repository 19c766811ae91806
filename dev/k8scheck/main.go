// k8scheck renders a kustomization as `kubectl kustomize DIR` does, decodes every object
// strictly into its Kubernetes API type, and checks what the cdc pods need to start and be
// probed, scraped and mounted. It needs no cluster, no kubectl and no schema download.
//
//	go run . [-external-secret NAME]... [-print] DIR
//
// Exit status: 0 all good, 1 problems found (one line each), 2 the kustomization does not
// render or the command line is wrong.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() {
	var external []string
	flags := flag.NewFlagSet("k8scheck", flag.ContinueOnError)
	flags.Func("external-secret", "a Secret the pods may mount that is created outside the "+
		"kustomization (repeatable)", func(name string) error {
		external = append(external, name)
		return nil
	})
	print := flags.Bool("print", false, "write the rendered YAML to stdout, as kubectl kustomize does")
	flags.Usage = func() {
		fmt.Fprintln(flags.Output(), "usage: k8scheck [-external-secret NAME]... [-print] DIR")
		flags.PrintDefaults()
	}
	if err := flags.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if flags.NArg() != 1 {
		flags.Usage()
		os.Exit(2)
	}
	dir := flags.Arg(0)

	rendered, text, err := render(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: kustomize: %v\n", dir, err)
		os.Exit(2)
	}
	if *print {
		os.Stdout.Write(text)
	}
	objects, problems := decodeAll(rendered)
	// The checks follow references between objects: with one unread, they would report
	// its absence as well.
	if len(problems) == 0 {
		problems = check(objects, external)
	}
	if len(problems) > 0 {
		for _, problem := range problems {
			fmt.Fprintf(os.Stderr, "%s: %s\n", dir, problem)
		}
		fmt.Fprintf(os.Stderr, "%s: %d problem(s)\n", dir, len(problems))
		os.Exit(1)
	}
	names := make([]string, 0, len(objects))
	for _, o := range objects {
		names = append(names, o.String())
	}
	fmt.Fprintf(os.Stderr, "%s: %d objects decode strictly and pass the checks: %s\n",
		dir, len(objects), strings.Join(names, ", "))
}
